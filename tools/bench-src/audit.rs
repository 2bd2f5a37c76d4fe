//! `--suite audit`: the audit benchmarks of issue 5, on one JetStream ledger stream of
//! `--events` realistic events (see `workload`):
//!
//! 1. fill: the prelude through `Ledger::execute`, then `Ledger::append_next` from
//!    `--tasks` concurrent tasks (the production append path, pipelined by concurrency);
//! 2. raw consume of that stream (ordered pull consumer, count only): the ceiling; plus
//!    `EventLog::read_from` in the 1,024-event pages a rebuild reads;
//! 3. replay into fresh SQLite and PostgreSQL projections with `ops::replay`, the function
//!    `authledger replay` runs;
//! 4. audit query latency (`ProjectionStore::audit_events`, the store call of
//!    `GET /v1/audit/events`) on both backends, p50/p99 per filter shape;
//! 5. a signed checkpoint over the whole log (`audit::checkpoints::checkpoint_now`, what the
//!    every-minute job appends), then `authledger export` of the largest workspace as child
//!    processes (JSONL and CSV, each backend): events/s, MB/s, peak RSS via `wait4`.

mod child;
mod queries;
mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::jetstream;
use sqlx::Connection as _;

use authledger::config::StorageArgs;
use authledger::ledger::jetstream_log::{JetStreamEventLog, JetStreamOptions};
use authledger::ledger::{EventLog, KeyDir, Ledger};
use authledger::metrics::Metrics;
use authledger::projector::store::PROJECTION;
use authledger::projector::{PgProjections, SqliteProjections};

use crate::{load_average, ms, percentile, raw_consume, share, Args};

/// CPU seconds of a process and of its direct children (PostgreSQL: the postmaster and
/// its backends; exited backends count through the postmaster's cutime/cstime).
pub(crate) fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let fields = |stat: &str| -> Option<Vec<String>> {
        let after = stat.rsplit_once(')')?.1;
        Some(after.split_whitespace().map(str::to_string).collect())
    };
    let num = |f: &[String], i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let own = fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    // After the `)`: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let mut ticks = num(&own, 11) + num(&own, 12) + num(&own, 13) + num(&own, 14);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        if let Some(f) = fields(&stat) {
            if num(&f, 1) == u64::from(pid) {
                ticks += num(&f, 11) + num(&f, 12);
            }
        }
    }
    Some(ticks as f64 / 100.0)
}

fn self_cpu() -> f64 {
    crate::cpu_seconds("self").unwrap_or(0.0)
}

/// CPU seconds of bench, nats-server and PostgreSQL at one instant.
#[derive(Clone, Copy)]
struct CpuAt {
    bench: f64,
    nats: Option<f64>,
    pg: Option<f64>,
}

impl CpuAt {
    fn now(args: &Args) -> CpuAt {
        CpuAt {
            bench: self_cpu(),
            nats: args
                .server_pid
                .and_then(|p| crate::cpu_seconds(&p.to_string())),
            pg: args.pg_pid.and_then(tree_cpu_seconds),
        }
    }

    /// "CPU/event: bench X µs, nats-server Y µs, PostgreSQL Z µs" since `start`.
    fn per_event_since(&self, start: CpuAt, events: u64, pg: bool) -> String {
        let us = |s: f64| s * 1e6 / events.max(1) as f64;
        let mut parts = vec![format!("bench {:.0} µs", us(self.bench - start.bench))];
        if let (Some(a), Some(b)) = (start.nats, self.nats) {
            parts.push(format!("nats-server {:.0} µs", us(b - a)));
        }
        if pg {
            if let (Some(a), Some(b)) = (start.pg, self.pg) {
                parts.push(format!("PostgreSQL {:.0} µs", us(b - a)));
            }
        }
        format!("CPU/event: {}", parts.join(", "))
    }
}

struct Row {
    phase: String,
    events: u64,
    seconds: f64,
    note: String,
}

struct ExportRow {
    format: String,
    backend: String,
    events: u64,
    run: child::ChildRun,
    note: String,
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connect to PostgreSQL (--database-url)")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {name}"))?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .unwrap_or_default();
    eprintln!("[pg] PostgreSQL {version}: created database {name}");
    conn.close().await.ok();
    Ok(database_url(admin_url, name))
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        conn.close().await.ok();
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let load_before = load_average();
    let started_all = Instant::now();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let run = run[run.len() - 8..].to_string();
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("audit-{run}"));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = run_in(args, &run, &work, &load_before, started_all).await;
    if !args.keep_streams {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

async fn run_in(
    args: &Args,
    run: &str,
    work: &std::path::Path,
    load_before: &str,
    started_all: Instant,
) -> anyhow::Result<()> {
    let events = args.events;
    let key_dir = work.join("keys");
    let signer = KeyDir::new(&key_dir)
        .init()
        .context("create the signing key")?;
    authledger::crypto::master::load_master_file(&key_dir, true)
        .context("create the master key")?;

    let mut opts = JetStreamOptions::new(args.nats_url.clone());
    opts.stream = format!("BENCH_AUDIT_{run}");
    opts.subject_prefix = format!("benchaudit{run}");
    opts.ack_timeout = Duration::from_secs(30);
    let storage = |data_dir: std::path::PathBuf, database_url: Option<String>| StorageArgs {
        data_dir,
        nats_url: Some(args.nats_url.clone()),
        nats_stream: opts.stream.clone(),
        nats_subject_prefix: opts.subject_prefix.clone(),
        nats_replicas: 1,
        nats_duplicate_window_secs: opts.duplicate_window.as_secs(),
        database_url,
        key_dir: Some(key_dir.clone()),
    };
    let sqlite_args = storage(work.join("sqlite"), None);

    let client = async_nats::ConnectOptions::new()
        .name("authledger-bench-audit")
        .connect(args.nats_url.as_str())
        .await
        .with_context(|| format!("connect to {}", args.nats_url))?;
    let server_version = client.server_info().version;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(30));

    let mut rows: Vec<Row> = Vec::new();
    let log = Arc::new(JetStreamEventLog::open(opts.clone()).await?);
    let dyn_log: Arc<dyn EventLog> = log.clone();

    // 1. Fill.
    let clock = Arc::new(workload::BenchClock::spanning(
        time::Duration::days(i64::from(args.span_days)),
        events,
    ));
    let ledger = Arc::new(Ledger::new(
        dyn_log.clone(),
        signer,
        clock.clone(),
        Metrics::new(),
    ));
    let users_per_weight = u32::try_from((events / 2000).max(10)).unwrap_or(u32::MAX);
    eprintln!(
        "[fill] {events} events: {} workspaces, {} tasks x {} live connections, span {} days ...",
        args.workspaces, args.tasks, args.slots, args.span_days
    );
    let c0 = CpuAt::now(args);
    let t0 = Instant::now();
    let (workspaces, prelude_events) =
        workload::prelude(&ledger, args.workspaces, users_per_weight, args.seed).await?;
    if prelude_events >= events {
        bail!("--events {events} is smaller than the prelude ({prelude_events} events)");
    }
    let workspaces = Arc::new(workspaces);
    let fill_events = events - prelude_events;
    let done = Arc::new(AtomicU64::new(prelude_events));
    let mut handles = Vec::new();
    for t in 0..args.tasks {
        let quota = share(fill_events, args.tasks, t);
        let mut gen = workload::TaskGen::new(
            t,
            args.tasks,
            args.slots,
            clock.clone(),
            workspaces.clone(),
            args.seed,
        )?;
        let ledger = ledger.clone();
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(usize::try_from(quota).unwrap_or(0));
            let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut n = 0u64;
            while n < quota {
                for a in gen.next_burst()? {
                    if n >= quota {
                        break;
                    }
                    let t0 = Instant::now();
                    let c = ledger
                        .append_next(&a.key, &a.actor, &a.event)
                        .await
                        .with_context(|| format!("append {} to {}", a.event.kind(), a.key))?;
                    lat.push(t0.elapsed());
                    if c.duplicate {
                        bail!("append to {}: unexpected duplicate", a.key);
                    }
                    *kinds.entry(a.event.kind()).or_default() += 1;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok((lat, kinds))
        }));
    }
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let n = done.load(Ordering::Relaxed);
                eprintln!(
                    "    {n}/{events} ({:.0}/s so far, load {})",
                    n as f64 / t0.elapsed().as_secs_f64(),
                    load_average()
                );
            }
        })
    };
    let mut lat = Vec::new();
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut failure = None;
    for h in handles {
        match h.await {
            Ok(Ok((l, k))) => {
                lat.extend(l);
                for (kind, n) in k {
                    *kinds.entry(kind).or_default() += n;
                }
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow::anyhow!("fill task: {e}"))),
        }
    }
    progress.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    let fill_secs = t0.elapsed().as_secs_f64();
    let c1 = CpuAt::now(args);
    lat.sort_unstable();
    let head = log.head().await?;
    if head != events {
        bail!("the ledger stream holds {head} events, expected {events}");
    }
    let stream_bytes = js
        .get_stream(&opts.stream)
        .await
        .context("ledger stream")?
        .get_info()
        .await
        .context("stream info")?
        .state
        .bytes;
    eprintln!(
        "    {events} events in {fill_secs:.1} s ({:.0}/s); stream {:.0} MiB",
        events as f64 / fill_secs,
        mib(stream_bytes)
    );
    rows.push(Row {
        phase: "fill: ledger append (`Ledger::append_next`, JetStream), realistic mix".into(),
        events,
        seconds: fill_secs,
        note: format!(
            "{prelude_events} prelude events via `Ledger::execute`, then {} tasks x {} live connections; \
             latency p50 {} p99 {}; {}; stream {:.0} MiB ({:.0} B/event)",
            args.tasks,
            args.slots,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            c1.per_event_since(c0, events, false),
            mib(stream_bytes),
            stream_bytes as f64 / events as f64
        ),
    });
    drop(lat);

    // 2. Raw consume (the ceiling) and read_from pages, once next to each replay.
    let ledger_stream = js.get_stream(&opts.stream).await.context("ledger stream")?;
    let consume = |label: &'static str| {
        let stream = ledger_stream.clone();
        async move {
            eprintln!("[consume {label}] ordered consumer over {events} events ...");
            let c0 = CpuAt::now(args);
            let (secs, count, _bytes) = raw_consume(&stream, events).await?;
            let c1 = CpuAt::now(args);
            eprintln!("    {:.0}/s", count as f64 / secs);
            anyhow::Ok((secs, c1.per_event_since(c0, count, false)))
        }
    };
    let mut consume_secs = Vec::new();
    let (s, consume_cpu) = consume("1/3").await?;
    consume_secs.push(s);

    eprintln!("[read_from] EventLog::read_from pages of 1024 over {events} events ...");
    let c0 = CpuAt::now(args);
    let t0 = Instant::now();
    let mut next = 1u64;
    let mut read = 0u64;
    while next <= events {
        let page = dyn_log.read_from(next, 1024).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        read += page.iter().filter(|e| e.position <= events).count() as u64;
        next = last + 1;
    }
    let read_secs = t0.elapsed().as_secs_f64();
    let c1 = CpuAt::now(args);
    if read != events {
        bail!("read_from returned {read} events, expected {events}");
    }
    eprintln!("    {:.0}/s", events as f64 / read_secs);
    let read_row = Row {
        phase: "`EventLog::read_from`, pages of 1,024 (what a rebuild reads with)".into(),
        events,
        seconds: read_secs,
        note: format!(
            "one consumer per page; {}",
            c1.per_event_since(c0, events, false)
        ),
    };

    // 3a. Replay into fresh SQLite projections.
    eprintln!("[replay sqlite] ops::replay into a fresh projections.db ...");
    let c0 = CpuAt::now(args);
    let report = authledger::ops::replay(&sqlite_args, PROJECTION, None, false).await?;
    let c1 = CpuAt::now(args);
    if report.events != events {
        bail!(
            "SQLite replay applied {} events, expected {events}",
            report.events
        );
    }
    let sqlite_file = sqlite_args.data_dir.join("projections.db");
    let sqlite_bytes = std::fs::metadata(&sqlite_file)
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "    {:.0}/s ({:.1} s)",
        report.events_per_sec, report.seconds
    );
    let sqlite_replay = Row {
        phase: "replay into SQLite (`ops::replay`, = `authledger replay`)".into(),
        events,
        seconds: report.seconds,
        note: format!(
            "fresh `projections.db` (no WAL), one transaction, indexes built after the rows, then swapped; {}; file {:.0} MiB",
            c1.per_event_since(c0, events, false),
            mib(sqlite_bytes)
        ),
    };
    let (s, _) = consume("2/3").await?;
    consume_secs.push(s);

    // 3b. Replay into fresh PostgreSQL databases: with the server's defaults on prefixes of
    // the log (the rebuild's cached generic plans make it quadratic), then the whole log
    // with `--pg-replay-plan-cache-mode` set on the database.
    let pg_name = format!("authledger_bench_{run}");
    let mut pg_replays: Vec<Row> = Vec::new();
    let mut pg_analyze_note = String::new();
    let pg = match &args.database_url {
        Some(admin) => {
            for n in args
                .pg_default_replay
                .split(',')
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0 && *n < events)
            {
                let name = format!("{pg_name}_first{n}");
                let url = create_database(admin, &name).await?;
                let pargs = storage(work.join("pg"), Some(url));
                eprintln!(
                    "[replay pg, server defaults] ops::replay --until {n} into a fresh database (timeout {} s) ...",
                    args.pg_default_timeout_secs
                );
                let c0 = CpuAt::now(args);
                let t0 = Instant::now();
                let replay = authledger::ops::replay(
                    &pargs,
                    PROJECTION,
                    Some(authledger::ops::ReplayUntil::Position(n)),
                    false,
                );
                let outcome =
                    tokio::time::timeout(Duration::from_secs(args.pg_default_timeout_secs), replay)
                        .await;
                let c1 = CpuAt::now(args);
                let row = match outcome {
                    Ok(report) => {
                        let report = report?;
                        eprintln!(
                            "    {:.0}/s ({:.1} s)",
                            report.events_per_sec, report.seconds
                        );
                        Row {
                            phase: format!(
                                "replay into PostgreSQL, server defaults, first {n} events (`ops::replay --until`)"
                            ),
                            events: report.events,
                            seconds: report.seconds,
                            note: format!(
                                "fresh database, one transaction, indexes built after the rows; {}",
                                c1.per_event_since(c0, report.events, true)
                            ),
                        }
                    }
                    Err(_) => {
                        eprintln!("    did not finish in {} s", args.pg_default_timeout_secs);
                        Row {
                            phase: format!(
                                "replay into PostgreSQL, server defaults, first {n} events (`ops::replay --until`)"
                            ),
                            events: 0,
                            seconds: t0.elapsed().as_secs_f64(),
                            note: format!(
                                "**did not finish in {} s** (stopped; the transaction rolled back)",
                                args.pg_default_timeout_secs
                            ),
                        }
                    }
                };
                pg_replays.push(row);
                drop_database(admin, &name).await;
            }
            Some((admin.clone(), create_database(admin, &pg_name).await?))
        }
        None => {
            eprintln!("[replay pg] no --database-url: PostgreSQL phases skipped");
            None
        }
    };
    let pg_args = pg
        .as_ref()
        .map(|(_, url)| storage(work.join("pg"), Some(url.clone())));
    if let (Some(pg_args), Some((admin, url))) = (&pg_args, &pg) {
        let mode = args.pg_replay_plan_cache_mode.trim();
        let custom = !mode.is_empty() && mode != "default";
        if custom {
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(&format!(
                "ALTER DATABASE {pg_name} SET plan_cache_mode = {mode}"
            ))
            .execute(&mut conn)
            .await
            .context("set plan_cache_mode")?;
            conn.close().await.ok();
        }
        eprintln!(
            "[replay pg] ops::replay into a fresh database (plan_cache_mode {}) ...",
            if custom { mode } else { "default" }
        );
        let c0 = CpuAt::now(args);
        let report = authledger::ops::replay(pg_args, PROJECTION, None, false).await?;
        let c1 = CpuAt::now(args);
        if report.events != events {
            bail!(
                "PostgreSQL replay applied {} events, expected {events}",
                report.events
            );
        }
        eprintln!(
            "    {:.0}/s ({:.1} s)",
            report.events_per_sec, report.seconds
        );
        let pg_data = args
            .pg_data_dir
            .as_ref()
            .map(|d| format!("; cluster data dir {:.0} MiB after", mib(dir_size(d))))
            .unwrap_or_default();
        pg_replays.push(Row {
            phase: if custom {
                format!("replay into PostgreSQL (`ops::replay`), whole log, database set to `plan_cache_mode = {mode}`")
            } else {
                "replay into PostgreSQL (`ops::replay`), whole log, server defaults".into()
            },
            events,
            seconds: report.seconds,
            note: format!(
                "fresh database, one transaction, indexes built after the rows; {}{pg_data}",
                c1.per_event_since(c0, events, true),
            ),
        });
        // Queries run as production would: default plan cache, tables analyzed (what
        // autovacuum does within a minute of the commit; done here so it is not left to chance).
        let mut conn = sqlx::PgConnection::connect(url).await?;
        if custom {
            sqlx::query(&format!("ALTER DATABASE {pg_name} RESET plan_cache_mode"))
                .execute(&mut conn)
                .await
                .context("reset plan_cache_mode")?;
        }
        let t0 = Instant::now();
        sqlx::query("ANALYZE")
            .execute(&mut conn)
            .await
            .context("ANALYZE")?;
        conn.close().await.ok();
        pg_analyze_note = format!(
            "PostgreSQL: after the replay the database's plan_cache_mode was reset to the default and `ANALYZE` ran ({:.1} s), as autovacuum would shortly after the commit",
            t0.elapsed().as_secs_f64()
        );
        let (s, _) = consume("3/3").await?;
        consume_secs.push(s);
    }
    consume_secs.sort_by(f64::total_cmp);
    let consume_median = consume_secs[consume_secs.len() / 2];
    let consume_rate = events as f64 / consume_median;
    rows.push(Row {
        phase: "raw consume of the same stream (ordered pull consumer, count only): the ceiling"
            .into(),
        events,
        seconds: consume_median,
        note: format!(
            "median of {} runs (one before each replay, one after); runs {}; {consume_cpu}",
            consume_secs.len(),
            consume_secs
                .iter()
                .map(|s| format!("{:.0}/s", events as f64 / s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    rows.push(read_row);
    for mut r in std::iter::once(sqlite_replay).chain(pg_replays) {
        let rate = r.events as f64 / r.seconds;
        if r.events > 0 {
            r.note = format!(
                "**{:.1}% of raw consume**; {}",
                rate / consume_rate * 100.0,
                r.note
            );
        }
        rows.push(r);
    }

    // 4. Query latency, against the largest workspace.
    let target_ws = workspaces
        .first()
        .map(|w| w.id.clone())
        .context("no workspace")?;
    let sqlite_store = SqliteProjections::open(&sqlite_file).await?;
    let targets = queries::targets(&sqlite_store, &target_ws).await?;
    let ws_rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT workspace_id, COUNT(*) FROM audit_events GROUP BY workspace_id ORDER BY COUNT(*) DESC",
    )
    .fetch_all(sqlite_store.pool())
    .await?;
    let kinds_ws: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*) FROM audit_events WHERE workspace_id = $1 GROUP BY kind ORDER BY COUNT(*) DESC",
    )
    .bind(&target_ws)
    .fetch_all(sqlite_store.pool())
    .await?;
    let outcomes_ws: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT outcome, COUNT(*) FROM audit_events WHERE workspace_id = $1 GROUP BY outcome ORDER BY COUNT(*) DESC",
    )
    .bind(&target_ws)
    .fetch_all(sqlite_store.pool())
    .await?;
    let shapes = queries::shapes(&targets, args.queries, args.seed);
    let warmup = 5;
    eprintln!(
        "[queries sqlite] {} x {} shapes (+ cursor pages) on workspace {target_ws} ({} rows) ...",
        args.queries,
        shapes.len(),
        targets.rows
    );
    let t0 = Instant::now();
    let sqlite_stats = queries::measure(&sqlite_store, &target_ws, &shapes, warmup).await?;
    let sqlite_query_secs = t0.elapsed().as_secs_f64();
    sqlite_store.close().await;
    let mut pg_stats = None;
    let mut pg_query_secs = 0.0;
    if let Some((_, url)) = &pg {
        let store = PgProjections::open(url).await?;
        eprintln!("[queries pg] ...");
        let t0 = Instant::now();
        pg_stats = Some(queries::measure(&store, &target_ws, &shapes, warmup).await?);
        pg_query_secs = t0.elapsed().as_secs_f64();
        store.pool().close().await;
    }

    // 5. Checkpoint over the whole log, then exports as child processes.
    let mut checkpoint_note = String::from("no checkpoint (--no-checkpoint): no inclusion proofs");
    if !args.no_checkpoint {
        eprintln!("[checkpoint] checkpoint_now over {events} positions ...");
        let state = authledger::app::AppState::open(&sqlite_args).await?;
        let t0 = Instant::now();
        let cp = authledger::audit::checkpoints::checkpoint_now(&state)
            .await
            .context("checkpoint")?
            .context("no checkpoint was needed?")?;
        checkpoint_note = format!(
            "a signed checkpoint covers positions 1..={} (appended in {:.1} s by `checkpoint_now`, \
             leaves read from the SQLite audit view), so every exported event carries an inclusion proof",
            cp.tree_size,
            t0.elapsed().as_secs_f64()
        );
        drop(state);
    }
    let mut exports: Vec<ExportRow> = Vec::new();
    let formats: Vec<String> = args
        .export_formats
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut backends = vec![("SQLite", sqlite_args.clone())];
    if let Some(p) = &pg_args {
        backends.push(("PostgreSQL", p.clone()));
    }
    for (backend, sargs) in &backends {
        for format in &formats {
            let mut cmd = std::process::Command::new(&args.authledger_bin);
            cmd.arg("--data-dir")
                .arg(&sargs.data_dir)
                .args(["--nats-url", &args.nats_url])
                .args(["--nats-stream", &sargs.nats_stream])
                .args(["--nats-subject-prefix", &sargs.nats_subject_prefix])
                .arg("--key-dir")
                .arg(&key_dir);
            if let Some(url) = &sargs.database_url {
                cmd.args(["--database-url", url]);
            }
            cmd.args(["export", "--workspace", &target_ws, "--format", format]);
            for var in [
                "AUTHLEDGER_SIGNING_KEY",
                "AUTHLEDGER_MASTER_KEY",
                "AUTHLEDGER_MASTER_KEYS_ACCEPTED",
                "AUTHLEDGER_DATABASE_URL",
                "AUTHLEDGER_NATS_URL",
                "AUTHLEDGER_DATA_DIR",
                "AUTHLEDGER_KEY_DIR",
            ] {
                cmd.env_remove(var);
            }
            cmd.env("RUST_LOG", "warn");
            eprintln!("[export {backend} {format}] authledger export --workspace {target_ws} --format {format} ...");
            let stderr_path = work.join(format!("export-{backend}-{format}.log"));
            let c0 = CpuAt::now(args);
            let run = tokio::task::spawn_blocking(move || child::run(cmd, &stderr_path))
                .await
                .context("export child")??;
            let c1 = CpuAt::now(args);
            let exported = if format == "jsonl" {
                let footer: serde_json::Value =
                    serde_json::from_str(&run.last_line).context("JSONL footer")?;
                if footer.get("type").and_then(|t| t.as_str()) != Some("footer") {
                    bail!("JSONL export ended without its footer: {}", run.last_line);
                }
                footer.get("events").and_then(|v| v.as_u64()).unwrap_or(0)
            } else {
                run.lines.saturating_sub(1)
            };
            eprintln!(
                "    {exported} events, {:.0} MiB in {:.1} s, peak RSS {:.0} MiB",
                mib(run.bytes),
                run.seconds,
                run.max_rss_kib as f64 / 1024.0
            );
            let server = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => format!("{:.1} s", b - a),
                _ => "?".into(),
            };
            let mut note = format!(
                "export CPU {:.1} s user + {:.1} s sys; nats-server {}",
                run.user_seconds,
                run.system_seconds,
                server(c0.nats, c1.nats)
            );
            if sargs.database_url.is_some() {
                note.push_str(&format!("; PostgreSQL {}", server(c0.pg, c1.pg)));
            }
            exports.push(ExportRow {
                format: format.clone(),
                backend: backend.to_string(),
                events: exported,
                run,
                note,
            });
        }
    }

    if !args.keep_streams {
        let _ = js.delete_stream(&opts.stream).await;
    }
    if let Some((admin, _)) = &pg {
        if !args.keep_streams {
            drop_database(admin, &pg_name).await;
        }
    }

    // Report.
    let total_kinds: u64 = kinds.values().sum::<u64>().max(1);
    println!();
    println!(
        "Audit suite: nats-server {server_version}, {events} events over {} workspaces (span {} days); \
         total {:.0} s; load average before {load_before}, after {}",
        args.workspaces,
        args.span_days,
        started_all.elapsed().as_secs_f64(),
        load_average()
    );
    println!();
    println!(
        "Workspaces (audit rows): {}",
        ws_rows
            .iter()
            .map(|(w, n)| {
                let name = workspaces
                    .iter()
                    .find(|x| &x.id == w)
                    .map(|x| format!("\"{}\", {} users", x.name, x.users.len()))
                    .unwrap_or_else(|| "system".into());
                format!("{w} ({name}): {n}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "Event mix of the fill (after the prelude): {}",
        kinds
            .iter()
            .map(|(k, n)| format!("{k} {:.2}%", *n as f64 * 100.0 / total_kinds as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    if !pg_analyze_note.is_empty() {
        println!("{pg_analyze_note}.");
        println!();
    }
    println!("| Phase | Events | Seconds | Events/s | Notes |");
    println!("|---|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {} |",
            r.phase,
            r.events,
            r.seconds,
            r.events as f64 / r.seconds,
            r.note
        );
    }
    println!();
    println!(
        "Queries: workspace {target_ws} ({} audit rows, {} users of whom {} have > 100 events, {} connections); \
         {} queries per shape after {warmup} warm-up queries, one at a time, limit 100 (101 rows fetched), newest first; \
         SQLite {sqlite_query_secs:.0} s, PostgreSQL {pg_query_secs:.0} s in all",
        targets.rows,
        targets.users_total,
        targets.users.len(),
        targets.connections.len(),
        args.queries
    );
    println!(
        "Kinds in that workspace: {}",
        kinds_ws
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Outcomes in that workspace: {}",
        outcomes_ws
            .iter()
            .map(|(k, n)| format!("{} {n}", k.as_deref().unwrap_or("(none)")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "| Filter | Backend | Page | Queries | p50 | p99 | max | Rows/page (mean) | p99 < 50 ms |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---|");
    let mut backends_stats = vec![("SQLite", &sqlite_stats)];
    if let Some(p) = &pg_stats {
        backends_stats.push(("PostgreSQL", p));
    }
    for (i, shape) in shapes.iter().enumerate() {
        for (backend, stats) in &backends_stats {
            let Some(st) = stats.get(i) else { continue };
            for (page, lat, rows) in [
                ("first", &st.first, st.rows_first),
                ("cursor", &st.cursor, st.rows_cursor),
            ] {
                if lat.is_empty() {
                    println!(
                        "| {} | {backend} | {page} | 0 | – | – | – | – | n/a (no second page) |",
                        shape.name
                    );
                    continue;
                }
                let p99 = percentile(lat, 0.99);
                println!(
                    "| {} | {backend} | {page} | {} | {} | {} | {} | {:.0} | {} |",
                    shape.name,
                    lat.len(),
                    ms(percentile(lat, 0.5)),
                    ms(p99),
                    ms(lat.last().copied().unwrap_or_default()),
                    rows as f64 / lat.len() as f64,
                    if p99 < Duration::from_millis(50) {
                        "met"
                    } else {
                        "**NOT met**"
                    }
                );
            }
        }
    }
    println!();
    println!("Export: workspace {target_ws}; {checkpoint_note}.");
    println!();
    println!("| Format | Projections | Events | Output MiB | Seconds | Events/s | MiB/s | Peak RSS (VmHWM, MiB) | Notes |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for e in &exports {
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} | {} |",
            e.format,
            e.backend,
            e.events,
            mib(e.run.bytes),
            e.run.seconds,
            e.events as f64 / e.run.seconds,
            mib(e.run.bytes) / e.run.seconds,
            e.run.max_rss_kib as f64 / 1024.0,
            e.note
        );
    }
    Ok(())
}

//! `--suite soak` (issue 21): a bounded mixed workload for `--soak-secs` against
//! `authledger serve` on each backend (the embedded default, then JetStream + PostgreSQL),
//! sampled every `--soak-sample-secs`: the service's RSS and open file descriptors, the
//! embedded log's and projections' WAL sizes, the projection lag (`/metrics`), p50/p99 per
//! route over the sample's window, and errors. Prints a table per backend and fails when RSS,
//! file descriptors or lag grow without bound (the second half's peak well above the first
//! half's), or when any request failed.
//!
//! The mix per client, in turn: a gateway tool call (4 in 10), a scoped token (2), an
//! audit query (1), a connection read (2), a connection create from credentials (1).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::agents::{
    cleanup, deploy, fixture, plain_client, run_cli, start_upstream, str_of, Backend, Service,
    UPSTREAM_KEY,
};
use super::{load_average, percentile, Args};

/// The routes of the mix, in the order of the table.
const ROUTES: [&str; 5] = [
    "POST /v1/tools/execute",
    "POST /v1/tokens",
    "GET /v1/audit/events",
    "GET /v1/connections/{id}",
    "POST /v1/connections",
];

/// Which route request `i` of a client is.
fn route_of(i: u64) -> usize {
    match i % 10 {
        0..=3 => 0,
        4 | 5 => 1,
        6 => 2,
        7 | 8 => 3,
        _ => 4,
    }
}

/// Latencies and errors since the last sample, per route.
#[derive(Default)]
struct Window {
    lat: [Vec<Duration>; 5],
    errors: u64,
    first_error: Option<String>,
}

/// One sample of the service.
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    wal_kib: u64,
    lag: u64,
    requests: usize,
    p: [(Duration, Duration); 5],
    errors: u64,
}

struct Mix {
    svc_base: String,
    admin: String,
    agent: String,
    connection_id: String,
    config_id: String,
    tool: String,
}

impl Mix {
    fn request(
        &self,
        http: &Client,
        route: usize,
        n: u64,
    ) -> (reqwest::RequestBuilder, StatusCode) {
        let url = |p: &str| format!("{}{p}", self.svc_base);
        match route {
            0 => (
                http.post(url("/v1/tools/execute"))
                    .bearer_auth(&self.agent)
                    .json(
                        &json!({ "tool": self.tool, "connection_id": self.connection_id,
                                   "arguments": {} }),
                    ),
                StatusCode::OK,
            ),
            1 => (
                http.post(url("/v1/tokens"))
                    .bearer_auth(&self.agent)
                    .json(&json!({ "connection_id": self.connection_id, "tool": self.tool })),
                StatusCode::CREATED,
            ),
            2 => (
                http.get(url("/v1/audit/events?limit=20"))
                    .bearer_auth(&self.admin),
                StatusCode::OK,
            ),
            3 => (
                http.get(url(&format!("/v1/connections/{}", self.connection_id)))
                    .bearer_auth(&self.admin),
                StatusCode::OK,
            ),
            _ => (
                http.post(url("/v1/connections"))
                    .bearer_auth(&self.admin)
                    .json(&json!({ "auth_config_id": self.config_id,
                                   "user_id": format!("soak-user-{n}"),
                                   "credentials": { "api_key": UPSTREAM_KEY } })),
                StatusCode::CREATED,
            ),
        }
    }
}

/// One client: requests in turn until `stop`, each recorded in the shared window.
async fn client_loop(
    mix: Arc<Mix>,
    id: u64,
    window: Arc<Mutex<Window>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let http = plain_client()?;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let route = route_of(i);
        let (req, expect) = mix.request(&http, route, id * 1_000_000_000 + i);
        let t0 = Instant::now();
        let outcome = match req.send().await {
            Ok(r) if r.status() == expect => r.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                Err(format!(
                    "{}: {status} {}",
                    ROUTES[route],
                    &text[..text.len().min(300)]
                ))
            }
            Err(e) => Err(format!("{}: {e:#}", ROUTES[route])),
        };
        let took = t0.elapsed();
        if let Ok(mut w) = window.lock() {
            w.lat[route].push(took);
            if let Err(e) = outcome {
                w.errors += 1;
                w.first_error.get_or_insert(e);
            }
        }
        i += 1;
    }
    Ok(())
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// The size of every `*-wal` file under the data dir (the embedded log's and the SQLite
/// projections').
fn wal_kib(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, total);
            } else if path.to_string_lossy().ends_with("-wal") {
                *total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut total);
    total / 1024
}

/// The largest projection lag `/metrics` reports.
async fn lag(http: &Client, svc: &Service) -> u64 {
    let Ok(r) = http.get(svc.url("/metrics")).send().await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("projection_lag_events") && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .fold(0.0f64, f64::max) as u64
}

async fn sample(
    http: &Client,
    svc: &Service,
    data: &Path,
    window: &Mutex<Window>,
    at: Duration,
) -> (Sample, Option<String>) {
    let taken = match window.lock() {
        Ok(mut w) => std::mem::take(&mut *w),
        Err(_) => Window::default(),
    };
    let mut p = [(Duration::ZERO, Duration::ZERO); 5];
    let mut requests = 0;
    for (r, lat) in taken.lat.iter().enumerate() {
        let mut sorted = lat.clone();
        sorted.sort_unstable();
        requests += sorted.len();
        p[r] = (percentile(&sorted, 0.5), percentile(&sorted, 0.99));
    }
    let s = Sample {
        at,
        rss_kib: proc_status_kib(svc.pid, "VmRSS:"),
        fds: open_fds(svc.pid),
        wal_kib: wal_kib(data),
        lag: lag(http, svc).await,
        requests,
        p,
        errors: taken.errors,
    };
    (s, taken.first_error)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn print_table(backend: &str, samples: &[Sample]) {
    println!("\n### {backend}\n");
    let mut head = String::from("| t (s) | req/s | RSS MiB | fds | WAL KiB | lag |");
    let mut rule = String::from("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in ROUTES {
        head.push_str(&format!(" {r} p50/p99 ms |"));
        rule.push_str(" ---: |");
    }
    head.push_str(" errors |");
    rule.push_str(" ---: |");
    println!("{head}\n{rule}");
    let mut last = Duration::ZERO;
    for s in samples {
        let secs = (s.at - last).as_secs_f64().max(0.001);
        last = s.at;
        let mut row = format!(
            "| {:.0} | {:.0} | {:.1} | {} | {} | {} |",
            s.at.as_secs_f64(),
            s.requests as f64 / secs,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.wal_kib,
            s.lag
        );
        for (p50, p99) in s.p {
            row.push_str(&format!(" {}/{} |", ms(p50), ms(p99)));
        }
        row.push_str(&format!(" {} |", s.errors));
        println!("{row}");
    }
}

/// Growth without bound: the second half's peak well above the first half's (after the
/// first sample, which is the warm-up). RSS may grow by 25 % + 32 MiB (allocator arenas,
/// caches filling up), file descriptors by 16, the lag must stay under 1,000 events and not
/// end higher than it started by more than that.
fn unbounded(samples: &[Sample]) -> Vec<String> {
    let steady = &samples[1.min(samples.len())..];
    if steady.len() < 4 {
        return vec![format!("too few samples ({}): run longer", samples.len())];
    }
    let (first, second) = steady.split_at(steady.len() / 2);
    let peak = |s: &[Sample], f: fn(&Sample) -> u64| s.iter().map(f).max().unwrap_or(0);
    let mut found = Vec::new();
    let (rss1, rss2) = (peak(first, |s| s.rss_kib), peak(second, |s| s.rss_kib));
    if rss2 > rss1 + rss1 / 4 + 32 * 1024 {
        found.push(format!(
            "RSS grew: first half peak {rss1} KiB, second half {rss2} KiB"
        ));
    }
    let (fd1, fd2) = (peak(first, |s| s.fds), peak(second, |s| s.fds));
    if fd2 > fd1 + 16 {
        found.push(format!("file descriptors grew: {fd1} → {fd2}"));
    }
    let lag2 = peak(second, |s| s.lag);
    if lag2 >= 1000 {
        found.push(format!("projection lag reached {lag2} events"));
    }
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    if errors > 0 {
        found.push(format!("{errors} requests failed"));
    }
    found
}

async fn soak_backend(
    args: &Args,
    backend: Backend,
    dir: &Path,
    run: &str,
    upstream: &str,
) -> anyhow::Result<Vec<String>> {
    let d = deploy(args, backend, dir, run).await?;
    let outcome = async {
        let bin = &args.authledger_bin;
        if backend == Backend::JetStream {
            run_cli(bin, &d.storage, &["keys", "init"]).await?;
        }
        let boot: Value = serde_json::from_str(
            &run_cli(bin, &d.storage, &["bootstrap", "--workspace", "soak"]).await?,
        )
        .context("bootstrap output")?;
        let admin = str_of(&boot, "admin_api_key")?;
        eprintln!("[soak {}] {}", backend.name(), d.description);
        let svc = Service::start(bin, &d.storage, dir).await?;
        let http = plain_client()?;
        let fx = fixture(&http, &svc, &admin, upstream).await?;
        let mix = Arc::new(Mix {
            svc_base: svc.url(""),
            admin: admin.clone(),
            agent: fx.agent_key.clone(),
            connection_id: fx.connection_id.clone(),
            config_id: fx.auth_config_id.clone(),
            tool: super::agents::TOOL.to_string(),
        });
        let window = Arc::new(Mutex::new(Window::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..args.soak_clients as u64)
            .map(|id| tokio::spawn(client_loop(mix.clone(), id, window.clone(), stop.clone())))
            .collect();
        let started = Instant::now();
        let total = Duration::from_secs(args.soak_secs);
        let every = Duration::from_secs(args.soak_sample_secs.max(1));
        let mut samples = Vec::new();
        let mut first_error = None;
        while started.elapsed() < total {
            tokio::time::sleep(every.min(total.saturating_sub(started.elapsed()))).await;
            let (s, e) = sample(&http, &svc, &dir.join("data"), &window, started.elapsed()).await;
            eprintln!(
                "[soak {}] {:>5.0} s: RSS {:.1} MiB, {} fds, lag {}, {} requests, {} errors",
                backend.name(),
                s.at.as_secs_f64(),
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.lag,
                s.requests,
                s.errors
            );
            first_error = first_error.or(e);
            samples.push(s);
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.context("soak client")??;
        }
        svc.stop().await;
        print_table(backend.name(), &samples);
        let mut found = unbounded(&samples);
        if let Some(e) = first_error {
            found.push(format!("first error: {e}"));
        }
        Ok::<_, anyhow::Error>(
            found
                .into_iter()
                .map(|f| format!("{}: {f}", backend.name()))
                .collect(),
        )
    }
    .await;
    cleanup(args, &d).await;
    outcome
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    if args.soak_secs < 4 * args.soak_sample_secs.max(1) || args.soak_clients == 0 {
        bail!("--soak-secs must cover at least 4 samples and --soak-clients be positive");
    }
    let backends = super::agents::backends(&args.agents_backends)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let run = run[run.len() - 8..].to_string();
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = parent.join(format!("soak-{run}"));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    println!(
        "## Soak: {} s per backend, {} clients, sampled every {} s (load before: {})",
        args.soak_secs,
        args.soak_clients,
        args.soak_sample_secs,
        load_average()
    );
    let upstream = start_upstream().await?;
    let mut found = Vec::new();
    for backend in backends {
        let dir = work.join(backend.name());
        std::fs::create_dir_all(&dir)?;
        found.extend(soak_backend(args, backend, &dir, &run, &upstream.base_url).await?);
    }
    if !args.keep_streams {
        let _ = std::fs::remove_dir_all(&work);
    }
    if !found.is_empty() {
        bail!("soak failed:\n  {}", found.join("\n  "));
    }
    println!("\nsoak passed: RSS, file descriptors and lag bounded; no request failed");
    Ok(())
}

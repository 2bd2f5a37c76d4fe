//! `--suite agents`: the agent benchmarks of issue 6, over HTTP against the real service
//! binary (`authledger serve`, `--authledger-bin`), started twice: on the embedded default
//! (SQLite log and projections in a temp data dir) and on JetStream (the script's
//! nats-server; projections and data keys on a fresh PostgreSQL database when
//! `--database-url` is given, else SQLite in the data dir). Each service is bootstrapped
//! with `authledger bootstrap`, then given an agent API key, an `api_key` auth config, a
//! connection and a workspace tool that GETs `/echo` of an upstream in this process.
//!
//! Per backend:
//! 1. HTTP floor: `GET /v1/workspace` with the agent key (authentication, rate limit, one
//!    projection read, no event), `--token-clients` clients;
//! 2. token issuance: `POST /v1/tokens {connection_id, tool}` with the agent key,
//!    `--token-clients` clients, `--warmup` requests, then `--token-requests` measured; then
//!    500 more from one client (the latency of one issuance without queueing);
//! 3. connection creates: `POST /v1/connections` from credentials with the admin key, a new
//!    user each, `--token-clients` clients (up to 5,000 creates), then 500 from one client;
//! 4. gateway overhead: the upstream called directly vs `POST /v1/tools/execute` with the
//!    agent key, and with a scoped token (one fresh token per call), each with 1 client
//!    (sequential) and with `--gateway-clients`, `--gateway-calls` calls per row.
//!
//! Every client is its own `reqwest::Client` (one keep-alive connection each). Latency is
//! request sent → whole body read. Each row starts on a quiet service (`settle`: under 5 %
//! of a core) and, after its load, waits until the service is quiet again: the seconds that
//! took are the row's "busy after", and its CPU time counts until then. Each row also gives
//! the service's own ledger append latency over the row (`authledger_ledger_append_seconds`
//! from `/metrics`) and CPU time per request of the service, nats-server, PostgreSQL and this
//! process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use futures::stream::{self, StreamExt as _};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection as _;
use tokio::process::{Child, Command};

use crate::{cpu_seconds, load_average, percentile, Args};

/// The workspace tool every gateway call runs.
pub(super) const TOOL: &str = "custom.bench_echo";
/// The connection's credential: the upstream checks that the gateway injected it.
pub(super) const UPSTREAM_KEY: &str = "bench-upstream-key-5f1c2a9e";
/// Warm-up calls before each gateway row.
const GATEWAY_WARMUP: u64 = 200;
/// Requests of the one-client token issuance row.
const SEQUENTIAL_ISSUES: u64 = 500;
/// Connection creates measured with many clients (each a new connection, data key and row).
const CONNECTION_CREATES: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Backend {
    Embedded,
    JetStream,
}

impl Backend {
    pub(super) fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::JetStream => "jetstream",
        }
    }
}

// ---------------------------------------------------------------------------------------
// The upstream
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct UpstreamHits {
    /// Requests that carried `X-Api-Key: UPSTREAM_KEY`.
    keyed: AtomicU64,
    /// Requests without it.
    unkeyed: AtomicU64,
}

pub(super) struct Upstream {
    pub(super) base_url: String,
    hits: Arc<UpstreamHits>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// An HTTP server on 127.0.0.1 that answers `GET /echo` at once with a small JSON.
pub(super) async fn start_upstream() -> anyhow::Result<Upstream> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("upstream: bind")?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let hits = Arc::new(UpstreamHits::default());
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let counted = counted.clone();
            async move {
                let keyed = headers
                    .get("x-api-key")
                    .is_some_and(|v| v.as_bytes() == UPSTREAM_KEY.as_bytes());
                if keyed {
                    counted.keyed.fetch_add(1, Ordering::Relaxed);
                } else {
                    counted.unkeyed.fetch_add(1, Ordering::Relaxed);
                }
                axum::Json(json!({ "ok": true, "items": [1, 2, 3] }))
            }
        }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Upstream {
        base_url,
        hits,
        _stop: tx,
    })
}

// ---------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("free port")?;
    Ok(l.local_addr()?.port())
}

/// Environment of every `authledger` child: none of the caller's `AUTHLEDGER_*`, then ours.
fn command(bin: &Path, storage: &[String]) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AUTHLEDGER_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(storage)
        // BENCH_SERVE_LOG (e.g. `info,sqlx::query=debug`) to see what the service does.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVE_LOG").unwrap_or_else(|_| "info".into()),
        )
        // The per-key (50/s) and per-workspace (500/s) limits would cap the run.
        .env("AUTHLEDGER_RATE_LIMIT_PER_SEC", "1000000000")
        .env("AUTHLEDGER_RATE_LIMIT_BURST", "1000000000")
        .env("AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC", "1000000000")
        .env("AUTHLEDGER_DENIAL_RATE_LIMIT_BURST", "1000000000")
        .env("AUTHLEDGER_WORKSPACE_RATE_LIMIT_PER_SEC", "1000000000")
        .env("AUTHLEDGER_WORKSPACE_RATE_LIMIT_BURST", "1000000000")
        // The workspace tool points at the local upstream (plain http on 127.0.0.1).
        .env("AUTHLEDGER_ALLOW_LOOPBACK_URLS", "true")
        .env("AUTHLEDGER_CHECKPOINT_SCHEDULE", "off")
        .env("AUTHLEDGER_REFRESH_SCHEDULE", "off");
    cmd
}

/// Runs an `authledger` subcommand to completion; its stdout.
pub(super) async fn run_cli(
    bin: &Path,
    storage: &[String],
    sub: &[&str],
) -> anyhow::Result<String> {
    let out = command(bin, storage)
        .args(sub)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {} {}", bin.display(), sub.join(" ")))?;
    if !out.status.success() {
        bail!(
            "authledger {} failed ({}): {}",
            sub.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One running `authledger serve`.
pub(super) struct Service {
    child: Child,
    pub(super) pid: u32,
    base: String,
    stderr: PathBuf,
}

impl Service {
    pub(super) async fn start(
        bin: &Path,
        storage: &[String],
        dir: &Path,
    ) -> anyhow::Result<Service> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let stdout = dir.join("serve.out");
        let stderr = dir.join("serve.err");
        let mut child = command(bin, storage)
            .args(["serve", "--listen", &addr])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {} serve", bin.display()))?;
        let pid = child.id().context("serve: no pid")?;
        let base = format!("http://{addr}");
        let probe = plain_client()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = probe.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some(status) = child.try_wait()? {
                bail!("serve exited early ({status}):\n{}", tail(&stderr));
            }
            if Instant::now() > deadline {
                bail!("serve not healthy in 60 s:\n{}", tail(&stderr));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Service {
            child,
            pid,
            base,
            stderr,
        })
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM by PID, up to 10 s to exit, then SIGKILL.
    pub(super) async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub(super) fn plain_client() -> anyhow::Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// One admin/agent call during setup: (status, JSON body).
async fn call(
    http: &Client,
    svc: &Service,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = http.request(method, svc.url(path)).bearer_auth(bearer);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.with_context(|| path.to_string())?;
    let status = r.status();
    let text = r.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(json!(text))))
}

async fn created(
    http: &Client,
    svc: &Service,
    bearer: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let (status, v) = call(http, svc, bearer, Method::POST, path, Some(body)).await?;
    if status != StatusCode::CREATED {
        bail!("POST {path}: {status} {v}");
    }
    Ok(v)
}

pub(super) fn str_of(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {key} in {v}"))
}

/// What the benchmark needs in the workspace.
pub(super) struct Fixture {
    pub(super) agent_key: String,
    pub(super) connection_id: String,
    pub(super) auth_config_id: String,
}

pub(super) async fn fixture(
    http: &Client,
    svc: &Service,
    admin: &str,
    upstream: &str,
) -> anyhow::Result<Fixture> {
    // The bootstrap events reach the service's projections after it started (JetStream).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = call(http, svc, admin, Method::GET, "/v1/workspace", None).await?;
        if status == StatusCode::OK {
            break;
        }
        if Instant::now() > deadline {
            bail!("the bootstrapped workspace never showed: {status} {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let key = created(
        http,
        svc,
        admin,
        "/v1/api-keys",
        json!({ "name": "bench agent", "role": "agent" }),
    )
    .await?;
    let config = created(
        http,
        svc,
        admin,
        "/v1/auth-configs",
        json!({
            "name": "bench", "provider": "custom", "auth_type": "api_key",
            "api_key": { "key_name": "X-Api-Key", "location": "header", "prefix": null },
        }),
    )
    .await?;
    let connection = created(
        http,
        svc,
        admin,
        "/v1/connections",
        json!({
            "auth_config_id": str_of(&config, "id")?,
            "user_id": "bench-user",
            "credentials": { "api_key": UPSTREAM_KEY },
        }),
    )
    .await?;
    if connection["status"] != "active" {
        bail!("connection not active: {connection}");
    }
    created(
        http,
        svc,
        admin,
        "/v1/tools",
        json!({
            "name": TOOL, "provider": "custom",
            "description": "Benchmark tool: GET /echo of a local upstream.",
            "method": "GET", "base_url": upstream, "path": "/echo",
            "parameters": { "type": "object" },
            "required_scopes": [], "risk": "read",
        }),
    )
    .await?;
    Ok(Fixture {
        agent_key: str_of(&key, "key")?,
        connection_id: str_of(&connection, "id")?,
        auth_config_id: str_of(&config, "id")?,
    })
}

// ---------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------

/// One request of a load, sent as is.
struct Req {
    method: Method,
    url: String,
    bearer: Option<String>,
    /// Send `X-Api-Key: UPSTREAM_KEY` (direct calls: what the gateway injects).
    api_key: bool,
    body: Option<Bytes>,
    expect: StatusCode,
    /// A gateway answer must also say the upstream answered 200.
    upstream_ok: bool,
}

struct Load {
    secs: f64,
    /// Sorted.
    lat: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.secs
    }
    fn p(&self, q: f64) -> Duration {
        percentile(&self.lat, q)
    }
    fn max(&self) -> Duration {
        self.lat.last().copied().unwrap_or_default()
    }
}

async fn send(client: &Client, r: &Req) -> Result<(), String> {
    let mut b = client.request(r.method.clone(), &r.url);
    if let Some(t) = &r.bearer {
        b = b.bearer_auth(t);
    }
    if r.api_key {
        b = b.header("X-Api-Key", UPSTREAM_KEY);
    }
    if let Some(body) = &r.body {
        b = b
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    let resp = b.send().await.map_err(|e| format!("{e:#}"))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| format!("{e:#}"))?;
    let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
    if status != r.expect {
        return Err(format!("{status}: {}", text()));
    }
    if r.upstream_ok {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if v["status"] != 200 {
            return Err(format!("upstream status: {}", text()));
        }
    }
    Ok(())
}

/// `total` requests from `workers` workers (worker `w` sends on `clients[w]`, its own
/// keep-alive connection); request `i` is `reqs[i % reqs.len()]`.
async fn drive(
    clients: &[Client],
    workers: usize,
    total: u64,
    reqs: Arc<Vec<Req>>,
) -> anyhow::Result<Load> {
    if clients.len() < workers || reqs.is_empty() || workers == 0 {
        bail!(
            "drive: {workers} workers, {} clients, {} requests",
            clients.len(),
            reqs.len()
        );
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for client in clients.iter().take(workers) {
        let (client, next, reqs) = (client.clone(), next.clone(), reqs.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first) = (0u64, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let r = &reqs[(i % reqs.len() as u64) as usize];
                let t0 = Instant::now();
                let outcome = send(&client, r).await;
                lat.push(t0.elapsed());
                if let Err(e) = outcome {
                    errors += 1;
                    first.get_or_insert(e);
                }
            }
            (lat, errors, first)
        }));
    }
    let mut load = Load {
        secs: 0.0,
        lat: Vec::with_capacity(usize::try_from(total).unwrap_or(0)),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        let (lat, errors, first) = t.await.context("load worker")?;
        load.lat.extend(lat);
        load.errors += errors;
        if load.first_error.is_none() {
            load.first_error = first;
        }
    }
    load.secs = started.elapsed().as_secs_f64();
    load.lat.sort_unstable();
    if let Some(e) = &load.first_error {
        eprintln!("    {} errors; first: {e}", load.errors);
    }
    Ok(load)
}

fn post(url: String, bearer: &str, body: &Value, upstream_ok: bool, expect: StatusCode) -> Req {
    Req {
        method: Method::POST,
        url,
        bearer: Some(bearer.to_string()),
        api_key: false,
        body: Some(Bytes::from(body.to_string())),
        expect,
        upstream_ok,
    }
}

/// `n` scoped tokens for the benchmark tool, issued with `parallel` requests in flight.
async fn issue_tokens(
    clients: &[Client],
    svc: &Service,
    fx: &Fixture,
    n: u64,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let body = json!({ "connection_id": fx.connection_id, "tool": TOOL, "ttl_seconds": 900 });
    let url = svc.url("/v1/tokens");
    let results: Vec<anyhow::Result<String>> = stream::iter(0..n)
        .map(|i| {
            let client = clients[i as usize % clients.len()].clone();
            let (url, body, key) = (url.clone(), body.clone(), fx.agent_key.clone());
            async move {
                let r = client.post(url).bearer_auth(key).json(&body).send().await?;
                let status = r.status();
                let v: Value = r.json().await?;
                if status != StatusCode::CREATED {
                    bail!("POST /v1/tokens: {status} {v}");
                }
                str_of(&v, "token")
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

// ---------------------------------------------------------------------------------------
// Observations: /metrics, CPU
// ---------------------------------------------------------------------------------------

/// `authledger_ledger_append_seconds` (and conflicts) at one instant.
#[derive(Clone, Default)]
struct Appends {
    count: f64,
    sum: f64,
    /// (le, cumulative count), ascending; +Inf last.
    buckets: Vec<(f64, f64)>,
    conflicts: f64,
    /// Gateway tool call phases (`authledger_tool_call_phase_seconds`): (phase, sum, count).
    phases: Vec<(String, f64, f64)>,
}

async fn appends(http: &Client, svc: &Service) -> anyhow::Result<Appends> {
    let text = http.get(svc.url("/metrics")).send().await?.text().await?;
    let mut a = Appends::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = match value.parse() {
            Ok(v) => v,
            Err(_) => continue,
        };
        if name == "authledger_ledger_append_seconds_sum" {
            a.sum = value;
        } else if name == "authledger_ledger_append_seconds_count" {
            a.count = value;
        } else if let Some(le) = name
            .strip_prefix("authledger_ledger_append_seconds_bucket{le=\"")
            .and_then(|s| s.strip_suffix("\"}"))
        {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            a.buckets.push((le, value));
        } else if name.starts_with("authledger_ledger_conflicts") {
            a.conflicts = value;
        } else if let Some(rest) = name.strip_prefix("authledger_tool_call_phase_seconds_") {
            // `sum{phase="prepare"}` or `count{phase="prepare"}` (buckets are skipped).
            let Some((stat, labels)) = rest.split_once("{phase=\"") else {
                continue;
            };
            let Some(phase) = labels.strip_suffix("\"}") else {
                continue;
            };
            let i = match a.phases.iter().position(|(p, _, _)| p == phase) {
                Some(i) => i,
                None => {
                    a.phases.push((phase.to_string(), 0.0, 0.0));
                    a.phases.len() - 1
                }
            };
            match stat {
                "sum" => a.phases[i].1 = value,
                "count" => a.phases[i].2 = value,
                _ => {}
            }
        }
    }
    a.buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
    Ok(a)
}

impl Appends {
    fn since(&self, before: &Appends) -> Appends {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, c)| {
                let b = before
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |(_, c)| *c);
                (*le, c - b)
            })
            .collect();
        let phases = self
            .phases
            .iter()
            .map(|(p, sum, count)| {
                let (s0, c0) = before
                    .phases
                    .iter()
                    .find(|(q, _, _)| q == p)
                    .map_or((0.0, 0.0), |(_, s, c)| (*s, *c));
                (p.clone(), sum - s0, count - c0)
            })
            .collect();
        Appends {
            count: self.count - before.count,
            sum: self.sum - before.sum,
            buckets,
            conflicts: self.conflicts - before.conflicts,
            phases,
        }
    }

    /// Upper bound of the bucket holding quantile `q`, in ms.
    fn quantile_ms(&self, q: f64) -> String {
        let want = self.count * q;
        for (le, c) in &self.buckets {
            if *c >= want && *c > 0.0 {
                return if le.is_finite() {
                    format!("≤{}", short_ms(le * 1000.0))
                } else {
                    ">3.3 s".into()
                };
            }
        }
        "-".into()
    }

    fn per_request(&self, requests: usize) -> String {
        if self.count <= 0.0 {
            return "0".into();
        }
        let mut s = format!(
            "{:.2}/req; mean {} ms (p50 {}, p99 {})",
            self.count / requests.max(1) as f64,
            short_ms(self.sum / self.count * 1000.0),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
        );
        if self.conflicts > 0.0 {
            s.push_str(&format!("; {} conflicts", self.conflicts));
        }
        let phases: Vec<String> = ["prepare", "requested", "upstream", "completed"]
            .iter()
            .filter_map(|want| {
                let (_, sum, count) = self.phases.iter().find(|(p, _, _)| p == want)?;
                (*count > 0.0).then(|| format!("{want} {}", short_ms(sum / count * 1000.0)))
            })
            .collect();
        if !phases.is_empty() {
            s.push_str(&format!(
                "; tool call phases, mean ms: {}",
                phases.join(", ")
            ));
        }
        s
    }
}

fn short_ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[derive(Clone, Copy, Default)]
struct Cpu {
    service: f64,
    nats: Option<f64>,
    pg: Option<f64>,
    bench: f64,
}

#[derive(Clone, Copy)]
struct Pids {
    service: u32,
    nats: Option<u32>,
    pg: Option<u32>,
}

impl Cpu {
    fn now(p: Pids) -> Cpu {
        Cpu {
            service: cpu_seconds(&p.service.to_string()).unwrap_or(0.0),
            nats: p.nats.and_then(|n| cpu_seconds(&n.to_string())),
            pg: p.pg.and_then(crate::audit::tree_cpu_seconds),
            bench: cpu_seconds("self").unwrap_or(0.0),
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        Cpu {
            service: self.service - before.service,
            nats: d(self.nats, before.nats),
            pg: d(self.pg, before.pg),
            bench: self.bench - before.bench,
        }
    }

    /// µs per request: service / nats / pg / bench.
    fn per_request(&self, requests: usize) -> String {
        let us = |s: f64| format!("{:.0}", s * 1e6 / requests.max(1) as f64);
        let opt = |s: Option<f64>| s.map_or("-".to_string(), us);
        format!(
            "{} / {} / {} / {}",
            us(self.service),
            opt(self.nats),
            opt(self.pg),
            us(self.bench)
        )
    }
}

/// p50 and p99 of `n` 4 KiB appends + `fdatasync` in `dir`: what one durable write costs.
async fn fsync_probe(dir: PathBuf, n: usize) -> anyhow::Result<(Duration, Duration)> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<(Duration, Duration)> {
        use std::io::Write as _;
        let path = dir.join("fsync-probe");
        let mut f = std::fs::File::create(&path)?;
        let block = vec![0u8; 4096];
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            f.write_all(&block)?;
            f.sync_data()?;
            lat.push(t0.elapsed());
        }
        drop(f);
        let _ = std::fs::remove_file(&path);
        lat.sort_unstable();
        Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
    })
    .await
    .context("fsync probe")?
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// One measured load.
struct Row {
    backend: &'static str,
    phase: &'static str,
    clients: usize,
    load: Load,
    appends: Appends,
    /// From the start of the load until the service is quiet again (`busy_after`).
    cpu: Cpu,
    /// Seconds the service kept using CPU after the last answer.
    busy_after: f64,
}

/// Settle window: the service is quiet once it uses under 5 % of a core over one window.
const SETTLE_WINDOW: Duration = Duration::from_millis(500);
/// Longest wait for a quiet service.
const SETTLE_MAX: Duration = Duration::from_secs(120);

/// Waits until the service process is quiet (under 5 % of a core over `SETTLE_WINDOW`, at
/// most `SETTLE_MAX`); returns the seconds it was still busy. Work a load leaves behind
/// (e.g. the projector's queued wake-ups, one per appended event) runs here.
async fn settle(pid: u32) -> f64 {
    let started = Instant::now();
    let cpu = || cpu_seconds(&pid.to_string()).unwrap_or(0.0);
    let mut last = cpu();
    loop {
        tokio::time::sleep(SETTLE_WINDOW).await;
        let now = cpu();
        if now - last < 0.05 * SETTLE_WINDOW.as_secs_f64() || started.elapsed() > SETTLE_MAX {
            break;
        }
        last = now;
    }
    (started.elapsed().saturating_sub(SETTLE_WINDOW)).as_secs_f64()
}

struct Ctx<'a> {
    http: Client,
    svc: &'a Service,
    pids: Pids,
    clients: &'a [Client],
    backend: &'static str,
}

impl Ctx<'_> {
    async fn measure(
        &self,
        phase: &'static str,
        workers: usize,
        warmup: u64,
        total: u64,
        reqs: Arc<Vec<Req>>,
    ) -> anyhow::Result<Row> {
        // Every row starts on a quiet service: the work a load leaves behind (see
        // `settle`) must not be measured in the next row.
        settle(self.pids.service).await;
        if warmup > 0 {
            drive(self.clients, workers, warmup, reqs.clone()).await?;
            settle(self.pids.service).await;
        }
        eprintln!(
            "[{}] {phase}: {total} requests, {workers} clients ...",
            self.backend
        );
        let (a0, c0) = (appends(&self.http, self.svc).await?, Cpu::now(self.pids));
        let load = drive(self.clients, workers, total, reqs).await?;
        let busy_after = settle(self.pids.service).await;
        let cpu = Cpu::now(self.pids).since(&c0);
        let a = appends(&self.http, self.svc).await?.since(&a0);
        eprintln!(
            "    {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; service busy {busy_after:.1} s after the load",
            load.rate(),
            ms_f(load.p(0.5)),
            ms_f(load.p(0.99)),
            load.errors
        );
        Ok(Row {
            backend: self.backend,
            phase,
            clients: workers,
            load,
            appends: a,
            cpu,
            busy_after,
        })
    }
}

fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where the run's services keep their state.
pub(super) struct Deployment {
    backend: Backend,
    pub(super) storage: Vec<String>,
    pub(super) description: String,
    /// PostgreSQL database to drop afterwards.
    database: Option<String>,
    /// JetStream stream to delete afterwards.
    stream: Option<String>,
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connect to PostgreSQL (--database-url)")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {name}"))?;
    conn.close().await.ok();
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[start..].find('/') {
        Some(slash) => &base[..start + slash],
        None => base,
    };
    Ok(format!("{server}/{name}{query}"))
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        conn.close().await.ok();
    }
}

pub(super) async fn deploy(
    args: &Args,
    backend: Backend,
    dir: &Path,
    run: &str,
) -> anyhow::Result<Deployment> {
    let data = dir.join("data").display().to_string();
    let mut storage = vec!["--data-dir".to_string(), data];
    let mut d = Deployment {
        backend,
        storage: Vec::new(),
        description: String::new(),
        database: None,
        stream: None,
    };
    match backend {
        Backend::Embedded => {
            d.description =
                "embedded default: SQLite log + SQLite projections (temp data dir)".into();
        }
        Backend::JetStream => {
            let stream = format!("AGENTS_{run}");
            storage.extend([
                "--nats-url".to_string(),
                args.nats_url.clone(),
                "--nats-stream".into(),
                stream.clone(),
                "--nats-subject-prefix".into(),
                format!("agents{run}"),
            ]);
            d.stream = Some(stream);
            match &args.database_url {
                Some(admin) => {
                    let name = format!("authledger_bench_agents_{run}");
                    let url = create_database(admin, &name).await?;
                    storage.extend(["--database-url".to_string(), url]);
                    d.database = Some(name);
                    d.description = "JetStream log (--nats-url: the script's nats-server) + PostgreSQL projections and data keys".into();
                }
                None => {
                    d.description = "JetStream log (--nats-url: the script's nats-server) + SQLite projections (no --database-url)".into();
                }
            }
        }
    }
    d.storage = storage;
    Ok(d)
}

pub(super) async fn cleanup(args: &Args, d: &Deployment) {
    if args.keep_streams {
        return;
    }
    if let (Some(admin), Some(name)) = (&args.database_url, &d.database) {
        drop_database(admin, name).await;
    }
    if let Some(stream) = &d.stream {
        if let Ok(client) = async_nats::connect(args.nats_url.as_str()).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(stream)
                .await;
        }
    }
}

async fn bench_backend(
    args: &Args,
    d: &Deployment,
    dir: &Path,
    upstream: &Upstream,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let bin = &args.authledger_bin;
    let backend = d.backend.name();
    if d.backend == Backend::JetStream {
        run_cli(bin, &d.storage, &["keys", "init"]).await?;
    }
    let boot: Value = serde_json::from_str(
        &run_cli(bin, &d.storage, &["bootstrap", "--workspace", "bench"]).await?,
    )
    .context("bootstrap output")?;
    let admin = str_of(&boot, "admin_api_key")?;
    eprintln!(
        "[{backend}] starting {} serve ({})",
        bin.display(),
        d.description
    );
    let svc = Service::start(bin, &d.storage, dir).await?;
    let result = async {
        let http = plain_client()?;
        let fx = fixture(&http, &svc, &admin, &upstream.base_url).await?;
        let workers = args.token_clients.max(args.gateway_clients).max(1);
        let clients = (0..workers)
            .map(|_| plain_client())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ctx = Ctx {
            http: http.clone(),
            svc: &svc,
            pids: Pids {
                service: svc.pid,
                nats: if d.backend == Backend::JetStream {
                    args.server_pid
                } else {
                    None
                },
                pg: if d.database.is_some() {
                    args.pg_pid
                } else {
                    None
                },
            },
            clients: &clients,
            backend,
        };
        let key = fx.agent_key.as_str();

        // 1. The HTTP floor: an authenticated read, no event.
        let floor = Arc::new(vec![Req {
            method: Method::GET,
            url: svc.url("/v1/workspace"),
            bearer: Some(key.to_string()),
            api_key: false,
            body: None,
            expect: StatusCode::OK,
            upstream_ok: false,
        }]);
        rows.push(
            ctx.measure(
                "HTTP floor: GET /v1/workspace",
                args.token_clients,
                args.warmup,
                args.token_requests,
                floor,
            )
            .await?,
        );

        // 2. Token issuance.
        let issue = Arc::new(vec![post(
            svc.url("/v1/tokens"),
            key,
            &json!({ "connection_id": fx.connection_id, "tool": TOOL }),
            false,
            StatusCode::CREATED,
        )]);
        rows.push(
            ctx.measure(
                "token issuance: POST /v1/tokens",
                args.token_clients,
                args.warmup,
                args.token_requests,
                issue.clone(),
            )
            .await?,
        );
        // One client: the latency of one issuance without queueing.
        rows.push(
            ctx.measure(
                "token issuance: POST /v1/tokens",
                1,
                20,
                args.token_requests.min(SEQUENTIAL_ISSUES),
                issue,
            )
            .await?,
        );

        // 3. Connection creates from credentials (a data key, a sealed credential, an
        // event each; answered once the projections show it), a new user per request.
        let creates = |run: &str, n: u64| {
            (0..n)
                .map(|i| {
                    post(
                        svc.url("/v1/connections"),
                        &admin,
                        &json!({
                            "auth_config_id": fx.auth_config_id,
                            "user_id": format!("bench-{run}-{i}"),
                            "credentials": { "api_key": UPSTREAM_KEY },
                        }),
                        false,
                        StatusCode::CREATED,
                    )
                })
                .collect::<Vec<_>>()
        };
        for (run, clients, n) in [
            (
                "c",
                args.token_clients,
                args.token_requests.min(CONNECTION_CREATES),
            ),
            ("s", 1, args.token_requests.min(SEQUENTIAL_ISSUES)),
        ] {
            rows.push(
                ctx.measure(
                    "connection create: POST /v1/connections",
                    clients,
                    0,
                    n,
                    Arc::new(creates(run, n)),
                )
                .await?,
            );
        }

        // 4. Gateway overhead, sequential then concurrent.
        let direct = Arc::new(vec![direct_keyed(&upstream.base_url)]);
        let execute_body = json!({
            "tool": TOOL, "connection_id": fx.connection_id, "arguments": {},
        });
        let execute = svc.url("/v1/tools/execute");
        let via_key = Arc::new(vec![post(
            execute.clone(),
            key,
            &execute_body,
            true,
            StatusCode::OK,
        )]);
        for clients in [1, args.gateway_clients.max(1)] {
            let n = args.gateway_calls;
            rows.push(
                ctx.measure(
                    "direct: GET upstream /echo",
                    clients,
                    GATEWAY_WARMUP,
                    n,
                    direct.clone(),
                )
                .await?,
            );
            rows.push(
                ctx.measure(
                    "gateway: POST /v1/tools/execute, agent API key",
                    clients,
                    GATEWAY_WARMUP,
                    n,
                    via_key.clone(),
                )
                .await?,
            );
            eprintln!("[{backend}] issuing {n} scoped tokens for the next row ...");
            let tokens = issue_tokens(ctx.clients, &svc, &fx, n, args.token_clients).await?;
            let via_token: Vec<Req> = tokens
                .iter()
                .map(|t| post(execute.clone(), t, &execute_body, true, StatusCode::OK))
                .collect();
            rows.push(
                ctx.measure(
                    "gateway: POST /v1/tools/execute, scoped token (one per call)",
                    clients,
                    0,
                    n,
                    Arc::new(via_token),
                )
                .await?,
            );
        }
        // Direct calls send the key themselves; through the gateway it must be injected.
        let unkeyed = upstream.hits.unkeyed.load(Ordering::Relaxed);
        eprintln!(
            "[{backend}] upstream: {} requests with the connection's key, {unkeyed} without",
            upstream.hits.keyed.load(Ordering::Relaxed)
        );
        if unkeyed > 0 {
            bail!("{unkeyed} upstream requests lacked the connection's key");
        }
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("[{backend}] serve stderr:\n{}", tail(&svc.stderr));
    }
    svc.stop().await;
    result
}

/// A direct upstream call with the header the gateway would inject.
fn direct_keyed(base: &str) -> Req {
    Req {
        method: Method::GET,
        url: format!("{base}/echo"),
        bearer: None,
        api_key: true,
        body: None,
        expect: StatusCode::OK,
        upstream_ok: false,
    }
}

/// The backends `--agents-backends` names.
pub(super) fn backends(list: &str) -> anyhow::Result<Vec<Backend>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "embedded" => Ok(Backend::Embedded),
            "jetstream" => Ok(Backend::JetStream),
            other => bail!("--agents-backends: unknown backend {other} (embedded, jetstream)"),
        })
        .collect()
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let backends = backends(&args.agents_backends)?;
    if args.token_clients == 0 || args.token_requests == 0 || args.gateway_calls == 0 {
        bail!("--token-clients, --token-requests and --gateway-calls must be positive");
    }
    if !args.authledger_bin.exists() {
        bail!(
            "{} not found: cargo build --release --bin authledger",
            args.authledger_bin.display()
        );
    }
    let load_before = load_average();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let run = run[run.len() - 8..].to_string();
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = parent.join(format!("agents-{run}"));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let (fsync_p50, fsync_p99) = fsync_probe(work.clone(), 300).await?;
    eprintln!(
        "[disk] 4 KiB write + fdatasync in {}: p50 {:.2} ms, p99 {:.2} ms",
        work.display(),
        ms_f(fsync_p50),
        ms_f(fsync_p99)
    );
    let upstream = start_upstream().await?;
    let mut rows = Vec::new();
    let mut described = Vec::new();
    let mut outcome = Ok(());
    for backend in backends {
        let dir = work.join(backend.name());
        std::fs::create_dir_all(&dir)?;
        let d = deploy(args, backend, &dir, &run).await?;
        described.push(format!("{}: {}", backend.name(), d.description));
        let r = bench_backend(args, &d, &dir, &upstream, &mut rows).await;
        cleanup(args, &d).await;
        if let Err(e) = r {
            outcome = Err(e.context(format!("{} backend", backend.name())));
            break;
        }
    }
    if !args.keep_streams {
        let _ = std::fs::remove_dir_all(&work);
    }
    outcome?;
    report(
        args,
        &rows,
        &described,
        &load_before,
        (fsync_p50, fsync_p99),
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn report(
    args: &Args,
    rows: &[Row],
    described: &[String],
    load_before: &str,
    fsync: (Duration, Duration),
) {
    println!();
    println!(
        "agents suite: {} ({} cores); load average before {load_before}, after {}; \
         4 KiB write + fdatasync on the work dir's disk: p50 {:.2} ms, p99 {:.2} ms",
        args.authledger_bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        ms_f(fsync.0),
        ms_f(fsync.1),
    );
    for d in described {
        println!("- {d}");
    }
    println!();
    println!("### HTTP floor and token issuance");
    println!();
    println!(
        "| Backend | Phase | Clients | Requests | Errors | req/s | p50 ms | p99 ms | max ms | Ledger appends (service's /metrics) | CPU µs/req: service / nats / pg / bench | Service busy after (s) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|");
    for r in rows.iter().filter(|r| !is_gateway(r)) {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} | {:.1} |",
            r.backend,
            r.phase,
            r.clients,
            r.load.lat.len(),
            r.load.errors,
            r.load.rate(),
            ms_f(r.load.p(0.5)),
            ms_f(r.load.p(0.99)),
            ms_f(r.load.max()),
            r.appends.per_request(r.load.lat.len()),
            r.cpu.per_request(r.load.lat.len()),
            r.busy_after,
        );
    }
    println!();
    println!("### Gateway overhead");
    println!();
    println!(
        "| Backend | Clients | Path | Calls | Errors | calls/s | p50 ms | p99 ms | max ms | p50 added vs direct | Ledger appends (service's /metrics) | CPU µs/call: service / nats / pg / bench | Service busy after (s) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|");
    let mut direct_p50 = None;
    for r in rows.iter().filter(|r| is_gateway(r)) {
        let p50 = ms_f(r.load.p(0.5));
        let added = if r.phase.starts_with("direct") {
            direct_p50 = Some(p50);
            "-".to_string()
        } else {
            direct_p50.map_or("-".into(), |d| format!("{:+.2} ms", p50 - d))
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {:.1} |",
            r.backend,
            r.clients,
            r.phase,
            r.load.lat.len(),
            r.load.errors,
            r.load.rate(),
            p50,
            ms_f(r.load.p(0.99)),
            ms_f(r.load.max()),
            added,
            r.appends.per_request(r.load.lat.len()),
            r.cpu.per_request(r.load.lat.len()),
            r.busy_after,
        );
    }
    println!();
    println!("Targets:");
    for r in rows
        .iter()
        .filter(|r| r.phase.starts_with("token issuance") && r.clients == args.token_clients)
    {
        let (rate, p99) = (r.load.rate(), ms_f(r.load.p(0.99)));
        println!(
            "- {}: token issuance {:.0}/s (≥ 5,000/s: {}), p99 {:.2} ms (< 20 ms: {}), {} errors",
            r.backend,
            rate,
            verdict(rate >= 5000.0),
            p99,
            verdict(p99 < 20.0),
            r.load.errors
        );
    }
    let mut direct = None;
    for r in rows.iter().filter(|r| is_gateway(r)) {
        if r.phase.starts_with("direct") {
            direct = Some(ms_f(r.load.p(0.5)));
            continue;
        }
        if let Some(d) = direct {
            let added = ms_f(r.load.p(0.5)) - d;
            println!(
                "- {}, {} client(s), {}: p50 added {:.2} ms (< 1 ms: {})",
                r.backend,
                r.clients,
                r.phase
                    .trim_start_matches("gateway: POST /v1/tools/execute, "),
                added,
                verdict(added < 1.0)
            );
        }
    }
}

fn is_gateway(r: &Row) -> bool {
    r.phase.starts_with("direct") || r.phase.starts_with("gateway")
}

//! The `authledger` command line.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

// Requests allocate and free on every runtime thread: mimalloc's per-thread heaps cost a
// fraction of glibc malloc's arenas there (BENCHMARKS.md, agents suite).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use authledger::app::{self, Access, AppState};
use authledger::config::StorageArgs;
use authledger::domain::Event;
use authledger::ledger::{Actor, AggregateKey, KeyDir};
use authledger::ops;

#[derive(Parser)]
#[command(
    name = "authledger",
    version,
    about = "Signed, audit-first credential ledger for AI agents"
)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    /// How log lines are written to stderr: `json` (one object a line) or `text`. Default:
    /// json when stderr is not a terminal, text on a terminal. Never ANSI colours off a
    /// terminal. The level is set by RUST_LOG (default info).
    #[arg(long, global = true, env = "AUTHLEDGER_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// When `GET /readyz` answers 503 because the read side does not keep up with the log.
#[derive(clap::Args)]
struct ReadinessArgs {
    /// Not ready while the projections are more than this many events behind the log.
    #[arg(long, env = "AUTHLEDGER_READINESS_MAX_LAG", default_value_t = 10_000)]
    readiness_max_lag: u64,
    /// Not ready while the projections have not advanced for this long (seconds) although
    /// the log is ahead of them.
    #[arg(
        long,
        env = "AUTHLEDGER_READINESS_MAX_STALL_SECS",
        default_value_t = 30
    )]
    readiness_max_stall_secs: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (embedded SQLite by default; --nats-url / --database-url to scale).
    Serve {
        #[arg(long, env = "AUTHLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Sustained requests per second allowed per API key (per instance).
        #[arg(long, env = "AUTHLEDGER_RATE_LIMIT_PER_SEC", default_value_t = 50.0)]
        rate_limit_per_sec: f64,
        /// Requests an API key may burst above the sustained rate.
        #[arg(long, env = "AUTHLEDGER_RATE_LIMIT_BURST", default_value_t = 100.0)]
        rate_limit_burst: f64,
        /// Refused requests (each recorded as an `access.denied` event) per second per client
        /// address; beyond it (and the burst) the answer is 429 and nothing is recorded.
        #[arg(
            long,
            env = "AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC",
            default_value_t = 10.0
        )]
        denial_rate_limit_per_sec: f64,
        #[arg(
            long,
            env = "AUTHLEDGER_DENIAL_RATE_LIMIT_BURST",
            default_value_t = 100.0
        )]
        denial_rate_limit_burst: f64,
        /// Sustained requests per second allowed per workspace (all its keys and end users
        /// together, per instance).
        #[arg(
            long,
            env = "AUTHLEDGER_WORKSPACE_RATE_LIMIT_PER_SEC",
            default_value_t = 500.0
        )]
        workspace_rate_limit_per_sec: f64,
        #[arg(
            long,
            env = "AUTHLEDGER_WORKSPACE_RATE_LIMIT_BURST",
            default_value_t = 1000.0
        )]
        workspace_rate_limit_burst: f64,
        /// Seconds a connection has to send a complete request head (from its opening, and
        /// between requests on a kept-alive connection); then it is closed.
        #[arg(
            long,
            env = "AUTHLEDGER_HEADER_READ_TIMEOUT_SECS",
            default_value_t = 10.0
        )]
        header_read_timeout_secs: f64,
        /// Seconds a request body may send nothing before the request is cut off.
        #[arg(long, env = "AUTHLEDGER_IDLE_TIMEOUT_SECS", default_value_t = 60.0)]
        idle_timeout_secs: f64,
        /// Open client connections at most; past it new ones wait until one closes.
        #[arg(long, env = "AUTHLEDGER_MAX_CONNECTIONS", default_value_t = 1024)]
        max_connections: usize,
        /// On SIGTERM (or Ctrl-C), seconds the requests already running may take to finish;
        /// new requests are answered 503 meanwhile, then the process exits (0).
        #[arg(long, env = "AUTHLEDGER_SHUTDOWN_GRACE_SECS", default_value_t = 30.0)]
        shutdown_grace_secs: f64,
        /// Allow loopback destinations (127.0.0.0/8, ::1, localhost), over https or plain
        /// http, for OAuth endpoints, JWKS, tool base URLs and connectors (development and
        /// tests only: in production a workspace admin could make the service call its own
        /// local endpoints).
        #[arg(long, env = "AUTHLEDGER_ALLOW_LOOPBACK_URLS")]
        allow_loopback_urls: bool,
        /// An exception to the outbound destination policy: a host name (its addresses are
        /// not checked) or an IP address or CIDR range (addresses in it are allowed even if
        /// private, link-local, ...). Repeatable; the environment variable takes a comma
        /// separated list. Never allows plain http off loopback.
        #[arg(
            long = "allow-destination",
            env = "AUTHLEDGER_ALLOW_DESTINATIONS",
            value_name = "HOST|CIDR",
            value_delimiter = ','
        )]
        allow_destinations: Vec<authledger::net::Allowed>,
        #[command(flatten)]
        readiness: ReadinessArgs,
        #[command(flatten)]
        connections: ConnectionArgs,
    },
    /// Create a workspace, its first admin API key and the first admin's console sign-up
    /// link (both printed once, as JSON, on stdout).
    Bootstrap {
        #[arg(long)]
        workspace: String,
        /// The email the first console admin signs in with.
        #[arg(long, default_value = DEFAULT_ADMIN_EMAIL)]
        admin_email: String,
    },
    /// Check every signature, chain link, version and position of the whole log.
    Verify {
        /// Print a machine-readable JSON report.
        #[arg(long)]
        json: bool,
        /// Pin this public key (base64 of 32 bytes) instead of the data dir's ring.json;
        /// repeatable. Keys named by rotation events signed by a trusted key follow.
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<String>,
        /// Pin the keys of a ring.json-format file kept outside the data dir; repeatable.
        #[arg(long = "ring", value_name = "FILE")]
        rings: Vec<std::path::PathBuf>,
        /// Signature-checking threads (default: the CPU count, at most 8); the verdict never
        /// depends on it.
        #[arg(long, hide = true)]
        threads: Option<usize>,
        #[command(flatten)]
        anchors: AnchorArgs,
    },
    /// Rebuild the projections from the log into fresh tables, then swap them in: readers
    /// never see a half-built projection. Embedded, a new projections.db is built beside the
    /// old one and renamed over it (stop `serve` on the data dir first); with
    /// --database-url, the tables are rebuilt in one transaction (serve may keep running).
    /// Prints `replayed N events in S s (R events/s)`.
    Replay {
        /// The projection to rebuild (today the only one is `state`).
        #[arg(long, value_name = "NAME", default_value = authledger::projector::store::PROJECTION)]
        projection: String,
        /// Stop after this log position, or after the last event that occurred at or before
        /// this RFC 3339 time: the projections then show the state as of then. `serve`
        /// catches up from there again when it (next) runs.
        #[arg(long, value_name = "POSITION|TIME")]
        until: Option<String>,
    },
    /// Export a workspace's audit history (streamed to stdout): JSONL with every event as
    /// signed, the checkpoints, inclusion proofs and public keys (check it with
    /// tools/verify-export), or CSV for spreadsheets. Recorded as `audit.queried`.
    Export {
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// RFC 3339 lower bound (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 upper bound (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// An event kind, or a prefix ending in '.' (e.g. `connection.`).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        auth_config_id: Option<String>,
        #[arg(long)]
        connection_id: Option<String>,
        #[arg(long)]
        outcome: Option<String>,
        /// Keep streaming the workspace's events as they are appended (a SIEM feed): each
        /// line an export event line, the envelope as signed; new events only, unless
        /// `--from-position`. Only `--kind` filters it.
        #[arg(long, conflicts_with_all = ["from", "to", "actor", "user_id", "auth_config_id", "connection_id", "outcome"])]
        follow: bool,
        /// With `--follow`: start at this log position (resume after the last line seen).
        #[arg(long, requires = "follow", value_name = "POSITION")]
        from_position: Option<u64>,
    },
    /// Write the raw log as JSON lines (`position`, `subject`, `aggregate_version`,
    /// `event_id`, `envelope` as stored; schemas/README.md §6a) for an independent verifier
    /// such as tools/verifier/verify.py. Dumps damaged logs too.
    DumpLog,
    /// Cosign the log's checkpoints as an independent witness (C2SP tlog-cosignature) with
    /// its own key, refusing any checkpoint that does not extend the last one it cosigned.
    Witness(WitnessArgs),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Append synthetic events as fast as possible, printing each acknowledged one
    /// (`ok <event_id> <position>`); used by crash tests.
    #[command(hide = true)]
    DebugAppend {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 4)]
        writers: u64,
    },
}

/// Trust from outside the data dir (`schemas/README.md` §7c).
#[derive(clap::Args)]
struct AnchorArgs {
    /// A checkpoint note recorded earlier (e.g. the witness's `checkpoint` file): the log
    /// must hold its tree size and its first events must hash to its root.
    #[arg(long, value_name = "FILE")]
    trust_checkpoint: Option<std::path::PathBuf>,
    /// A witness's verifier key (`<name>+<hex>+<base64>`, or a file holding it, such as its
    /// `witness.vkey`): the log must hold a valid cosignature by it. Repeatable.
    #[arg(long = "witness-key", value_name = "VKEY|FILE")]
    witness_keys: Vec<String>,
}

/// Settings of `authledger witness`.
#[derive(clap::Args)]
struct WitnessArgs {
    /// The witness's own directory: its key (created on first run), the last checkpoint it
    /// cosigned, its status.
    #[arg(long, value_name = "DIR")]
    key_dir: std::path::PathBuf,
    /// The service's base URL.
    #[arg(long, value_name = "URL")]
    log_url: String,
    /// An API key of role auditor.
    #[arg(long, env = "AUTHLEDGER_WITNESS_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The witness's name, fixed when its key is created (default
    /// `authledger-witness/<key prefix>`).
    #[arg(long)]
    name: Option<String>,
    /// The log's public key (base64 of 32 bytes) to check checkpoint signatures with;
    /// repeatable. Default: the keys the log publishes at /.well-known/jwks.json.
    #[arg(long = "log-key")]
    log_keys: Vec<String>,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 60)]
    interval_secs: u64,
    /// One round, then exit: 0 cosigned or nothing new, 1 refused, 2 the log could not be read.
    #[arg(long)]
    once: bool,
}

/// Connect flow and refresh settings of `serve`.
#[derive(clap::Args)]
struct ConnectionArgs {
    /// The email the first console admin signs in with (fresh data dir only).
    #[arg(long, env = "AUTHLEDGER_ADMIN_EMAIL", default_value = DEFAULT_ADMIN_EMAIL)]
    admin_email: String,
    /// The base URL end users' browsers reach this service at; the OAuth redirect URI
    /// registered with providers is `{public_url}/v1/oauth/callback`. Default: http://<listen>.
    #[arg(long, env = "AUTHLEDGER_PUBLIC_URL")]
    public_url: Option<String>,
    /// When proactive refresh runs (cron, six fields with seconds; "off" to disable).
    #[arg(long, env = "AUTHLEDGER_REFRESH_SCHEDULE", default_value = authledger::scheduler::DEFAULT_REFRESH_SCHEDULE)]
    refresh_schedule: String,
    /// Refresh access tokens this many seconds before they expire.
    #[arg(long, env = "AUTHLEDGER_REFRESH_BUFFER_SECS", default_value_t = 300)]
    refresh_buffer_secs: u64,
    /// Attempts per refresh on transient provider failures (5xx, timeouts).
    #[arg(long, env = "AUTHLEDGER_REFRESH_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    refresh_attempts: u32,
    /// First retry delay in milliseconds (doubles per attempt).
    #[arg(long, env = "AUTHLEDGER_REFRESH_RETRY_MS", default_value_t = 500)]
    refresh_retry_ms: u64,
    /// When signed checkpoints (Merkle roots over the log) are appended (cron, six fields;
    /// "off" to disable).
    #[arg(long, env = "AUTHLEDGER_CHECKPOINT_SCHEDULE", default_value = authledger::audit::checkpoints::DEFAULT_CHECKPOINT_SCHEDULE)]
    checkpoint_schedule: String,
    /// Timeout of each call to a provider, in seconds.
    #[arg(long, env = "AUTHLEDGER_PROVIDER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    provider_timeout_secs: u64,
    /// Timeout of each gateway call to an upstream API, in seconds.
    #[arg(long, env = "AUTHLEDGER_UPSTREAM_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    upstream_timeout_secs: u64,
    /// Extra attempts of an idempotent gateway call (GET, PUT, DELETE) after a timeout,
    /// connection error or 5xx; other methods are never retried.
    #[arg(long, env = "AUTHLEDGER_UPSTREAM_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=5))]
    upstream_retries: u32,
    /// How long a request with an Idempotency-Key holds its key while it runs, in seconds:
    /// the request is cut off at this bound (answered and replayed as a 504 whose outcome
    /// is unknown), and a claim whose instance died frees the key after it. Keep it above
    /// the upstream timeout times the attempts.
    #[arg(long, env = "AUTHLEDGER_IDEMPOTENCY_LEASE_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(2..=3600))]
    idempotency_lease_secs: u64,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a signing key in the key dir (for deployments that share one key).
    Init,
    /// Rotate the signing key; the rotation event is signed by the outgoing key.
    Rotate,
    /// Print the public key ring (JSON).
    Show,
    /// Re-wrap every data key under a new master key (the old master leaves the key dir).
    RotateMaster,
}

const DEFAULT_ADMIN_EMAIL: &str = "admin@example.com";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authledger: error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run(cli));
    drop(runtime);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match outcome {
        Ok(code) => code,
        Err(e) => {
            // One clear line, never a backtrace.
            eprintln!("authledger: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Log lines on stderr: JSON (flat: `timestamp`, `level`, `target`, `message` and the
/// event's fields) or text; colours only on a terminal, so files and collectors never see
/// ANSI codes. Beside them, OpenTelemetry traces when the environment asks for them
/// (`authledger::telemetry`), returned so `main` flushes them at exit.
fn init_logging(format: Option<LogFormat>) -> Option<authledger::telemetry::Telemetry> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !terminal,
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if json {
        lines
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .with_filter(filter)
            .boxed()
    } else {
        lines.with_ansi(terminal).with_filter(filter).boxed()
    };
    let (telemetry, failed) = match authledger::telemetry::Telemetry::from_env() {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };
    tracing_subscriber::registry()
        .with(lines)
        .with(telemetry.as_ref().map(|t| t.layer()))
        .init();
    if let Some(e) = failed {
        tracing::warn!("traces are not exported: {e}");
    }
    telemetry
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let storage = cli.storage;
    match cli.command {
        Command::Serve {
            listen,
            rate_limit_per_sec,
            rate_limit_burst,
            allow_loopback_urls,
            allow_destinations,
            denial_rate_limit_per_sec,
            denial_rate_limit_burst,
            workspace_rate_limit_per_sec,
            workspace_rate_limit_burst,
            header_read_timeout_secs,
            idle_timeout_secs,
            max_connections,
            shutdown_grace_secs,
            readiness,
            connections,
        } => {
            use authledger::api::ratelimit::{Limits, RateLimiter};
            let limits = Limits {
                requests: RateLimiter::new(rate_limit_per_sec, rate_limit_burst),
                workspaces: RateLimiter::new(
                    workspace_rate_limit_per_sec,
                    workspace_rate_limit_burst,
                ),
                denials: RateLimiter::new(denial_rate_limit_per_sec, denial_rate_limit_burst),
                callbacks: RateLimiter::new(denial_rate_limit_per_sec, denial_rate_limit_burst),
            };
            let seconds = |s: f64, flag: &str| {
                std::time::Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .with_context(|| format!("--{flag} must be a positive number of seconds"))
            };
            let connection_limits = authledger::server::ConnectionLimits {
                header_read_timeout: seconds(header_read_timeout_secs, "header-read-timeout-secs")?,
                idle_timeout: seconds(idle_timeout_secs, "idle-timeout-secs")?,
                max_connections: max_connections.max(1),
                shutdown_grace: seconds(shutdown_grace_secs, "shutdown-grace-secs")?,
            };
            serve(
                &storage,
                &listen,
                (limits, connection_limits),
                authledger::net::Policy::new(allow_loopback_urls, allow_destinations),
                (readiness, connections),
            )
            .await
        }
        Command::Bootstrap {
            workspace,
            admin_email,
        } => {
            let state = AppState::open(&storage).await?;
            let out = ops::bootstrap(&state.ledger, &workspace, &admin_email).await?;
            print_json(&serde_json::json!({
                "workspace_id": out.workspace_id,
                "api_key_id": out.api_key_id,
                "admin_api_key": out.admin_api_key,
                "console_sign_up_path": out.console_sign_up_path(),
                "console_admin_email": admin_email,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            json,
            trusted_keys,
            rings,
            threads,
            anchors,
        } => verify(&storage, json, (&trusted_keys, &rings), threads, &anchors).await,
        Command::Export {
            workspace,
            format,
            from,
            to,
            kind,
            actor,
            user_id,
            auth_config_id,
            connection_id,
            outcome,
            follow,
            from_position,
        } => {
            if follow {
                anyhow::ensure!(format == "jsonl", "--follow streams JSONL only");
                return follow_export(&storage, &workspace, kind, from_position).await;
            }
            let q = authledger::api::audit::ExportQuery {
                format: Some(format),
                from,
                to,
                kind,
                actor,
                user_id,
                auth_config_id,
                connection_id,
                outcome,
                min_position: None,
            };
            export(&storage, &workspace, &q).await
        }
        Command::Replay { projection, until } => replay(&storage, &projection, until).await,
        Command::Keys(k) => keys(&storage, k).await,
        Command::Witness(w) => witness(w).await,
        Command::DumpLog => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let (log, _) = app::open_log(&storage, Access::Read).await?;
            let n = authledger::ledger::dump::dump_log(log, &storage.nats_subject_prefix, &mut out)
                .await?;
            out.flush()?;
            eprintln!("dumped {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Command::DebugAppend { count, writers } => debug_append(&storage, count, writers).await,
    }
}

/// `verify`: the log's signatures, chains and checkpoints, then the anchors outside it.
async fn verify(
    storage: &StorageArgs,
    json: bool,
    (trusted_keys, rings): (&[String], &[std::path::PathBuf]),
    threads: Option<usize>,
    anchors: &AnchorArgs,
) -> anyhow::Result<ExitCode> {
    let (log, warnings) = app::open_log(storage, Access::Read).await?;
    let trust = authledger::ledger::trust::trusted_keys(&storage.key_dir(), trusted_keys, rings)?;
    let ring = trust.ring.clone();
    let options = authledger::ledger::verify::VerifyOptions {
        threads,
        page: None,
        trust: Some(trust.description),
    };
    let report =
        authledger::ledger::verify::verify_log_with(log, trust.ring, warnings, &options).await?;
    let anchored = check_anchors(storage, &ring, anchors).await?;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = serde_json::Value::Bool(report.ok && anchored.ok);
        v["anchors"] = serde_json::to_value(&anchored)?;
        print_json(&v)?;
    } else {
        print_verify_report(&report);
        print_anchors(&anchored);
    }
    Ok(if report.ok && anchored.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verify_report(report: &authledger::ledger::verify::VerifyReport) {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    match &report.failure {
        None => {
            println!(
                "ok: {} events, {} aggregates, {} keys verified in {:.2}s ({:.0} events/s)",
                report.events,
                report.aggregates,
                report.keys,
                report.seconds,
                report.events_per_sec
            );
            println!(
                "checkpoints: {} verified (signature, chain, Merkle root); {} positions not yet covered by a checkpoint",
                report.checkpoints, report.uncovered_positions
            );
        }
        Some(f) => println!(
            "FAILED at position {} (event {}, aggregate {}, version {}): {}",
            f.position,
            f.event_id.as_deref().unwrap_or("?"),
            f.aggregate.as_deref().unwrap_or("?"),
            f.version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into()),
            f.problem
        ),
    }
    println!("trust: {}", report.trust);
}

/// `replay`: rebuilds the projections from the log (up to `until`).
async fn replay(
    storage: &StorageArgs,
    projection: &str,
    until: Option<String>,
) -> anyhow::Result<ExitCode> {
    let until = until.as_deref().map(ops::ReplayUntil::parse).transpose()?;
    let report = ops::replay(storage, projection, until, true).await?;
    if report.position < report.head {
        eprintln!(
            "projections are as of position {} (log head {}); serve catches up from there",
            report.position, report.head
        );
    }
    println!(
        "replayed {} events in {:.2} s ({:.0} events/s)",
        report.events, report.seconds, report.events_per_sec
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks the log against trust from outside the data dir (`ledger::anchors`).
async fn check_anchors(
    storage: &StorageArgs,
    ring: &authledger::ledger::KeyRing,
    anchors: &AnchorArgs,
) -> anyhow::Result<authledger::ledger::anchors::AnchorReport> {
    use authledger::ledger::note::{Note, WitnessKey};
    let trusted = match &anchors.trust_checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(Note::parse(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let witnesses = anchors
        .witness_keys
        .iter()
        .map(|k| {
            let text = match std::fs::read_to_string(k) {
                Ok(t) => t,
                Err(_) => k.clone(),
            };
            WitnessKey::parse(&text).with_context(|| format!("--witness-key {k}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (log, _) = app::open_log(storage, Access::Read).await?;
    Ok(
        authledger::ledger::anchors::check(log.as_ref(), ring, trusted.as_ref(), &witnesses)
            .await?,
    )
}

fn print_anchors(trust: &authledger::ledger::anchors::AnchorReport) {
    match &trust.failure {
        Some(f) => println!("FAILED trust anchors: {f}"),
        None => {
            println!(
                "checkpoint notes: {} verified (C2SP signed note, log key){}",
                trust.checkpoint_notes,
                if trust.checkpoints_without_note > 0 {
                    format!(
                        "; {} older checkpoints carry none",
                        trust.checkpoints_without_note
                    )
                } else {
                    String::new()
                }
            );
            for a in &trust.anchors {
                println!("anchor: {a}");
            }
        }
    }
}

/// `authledger witness`: one round with `--once` (exit 0 / 1 refused / 2 error), else a
/// round every `--interval-secs` until interrupted.
async fn witness(args: WitnessArgs) -> anyhow::Result<ExitCode> {
    use authledger::witness::{Outcome, Witness, WitnessConfig};
    let w = Witness::new(WitnessConfig {
        key_dir: args.key_dir,
        log_url: args.log_url,
        api_key: args.api_key.into(),
        name: args.name,
        log_keys: args.log_keys,
    })?;
    eprintln!("witness key: {}", w.vkey());
    if args.once {
        return Ok(match w.round_and_report().await {
            Ok(Outcome::Refused(reason)) => {
                eprintln!("REFUSED: {reason}");
                ExitCode::from(1)
            }
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        });
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(args.interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Outcomes are logged and written to status.json; a refusal keeps the
                // witness running (and refusing) until its operator looks.
                let _ = w.round_and_report().await;
            }
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

async fn serve(
    storage: &StorageArgs,
    listen: &str,
    (limits, connection_limits): (
        authledger::api::ratelimit::Limits,
        authledger::server::ConnectionLimits,
    ),
    destinations: authledger::net::Policy,
    (readiness, connections): (ReadinessArgs, ConnectionArgs),
) -> anyhow::Result<ExitCode> {
    let refresh_schedule = match connections.refresh_schedule.as_str() {
        "off" => None,
        s => Some(authledger::scheduler::parse_schedule(s)?),
    };
    if let Some(url) = &connections.public_url {
        let parsed =
            reqwest::Url::parse(url).with_context(|| format!("invalid --public-url {url}"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https") && parsed.query().is_none(),
            "invalid --public-url {url}: must be an http(s) base URL without a query"
        );
    }
    let checkpoint_schedule = match connections.checkpoint_schedule.as_str() {
        "off" => None,
        s => Some(authledger::scheduler::parse_schedule(s)?),
    };
    let mut state = AppState::open(storage).await?;
    // Bind before writing anything, so a taken port leaves the log untouched.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let timeout = std::time::Duration::from_secs(connections.provider_timeout_secs);
    let settings = state
        .configure()
        .context("the service state is shared before it is configured")?;
    let destinations = Arc::new(destinations);
    settings.destinations = destinations.clone();
    settings.identity =
        Arc::new(authledger::identity::JwksCache::new().with_destinations(&destinations));
    settings.projection_health = Arc::new(authledger::projector::ProjectionHealth::new(
        authledger::projector::ReadinessBounds {
            max_lag: readiness.readiness_max_lag,
            max_stall: std::time::Duration::from_secs(readiness.readiness_max_stall_secs),
        },
        std::time::Instant::now(),
    ));
    let public_url = connections
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    settings.connections = authledger::commands::connections::ConnectionSettings {
        public_url: public_url.clone(),
        refresh_buffer: std::time::Duration::from_secs(connections.refresh_buffer_secs),
        refresh_attempts: connections.refresh_attempts,
        retry_base_delay: std::time::Duration::from_millis(connections.refresh_retry_ms),
        provider_timeout: timeout,
        refresh_schedule,
    };
    settings.oauth = Arc::new(authledger::oauth::OAuthClient::new(timeout, &destinations)?);
    settings.gateway = authledger::gateway::Gateway::new(
        authledger::gateway::GatewaySettings {
            upstream_timeout: std::time::Duration::from_secs(connections.upstream_timeout_secs),
            idempotent_retries: connections.upstream_retries,
        },
        &destinations,
    )?;
    settings.idempotency.lease = std::time::Duration::from_secs(connections.idempotency_lease_secs);
    if storage.embedded_log() && state.log.head().await? == 0 {
        let admin_email = connections.admin_email.as_str();
        let out = ops::bootstrap(&state.ledger, "default", admin_email).await?;
        let sign_up = format!("{public_url}{}", out.console_sign_up_path());
        print_json(&serde_json::json!({
            "workspace_id": out.workspace_id,
            "api_key_id": out.api_key_id,
            "admin_api_key": out.admin_api_key,
            "console_sign_up_url": sign_up,
            "console_admin_email": admin_email,
        }))?;
        // A log line like any other (JSON when the log is), so collectors can read stderr.
        tracing::info!(
            "Created workspace \"default\". Its admin API key above is shown only this once: \
             send it as `Authorization: Bearer <admin_api_key>`. \
             Open the console: {sign_up} (single use, valid 7 days) to set the password of \
             {admin_email}, the first console admin."
        );
    }
    tracing::info!("authledger listening on http://{addr}");
    let server = authledger::server::ServerSettings {
        limits: Arc::new(limits),
        checkpoint_schedule,
        connections: connection_limits,
    };
    authledger::server::serve(state, server, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn export(
    storage: &StorageArgs,
    workspace: &str,
    q: &authledger::api::audit::ExportQuery,
) -> anyhow::Result<ExitCode> {
    use tokio::io::AsyncWriteExt as _;
    let (format, filter, given) =
        authledger::api::audit::export_request(q).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = AppState::open(storage).await?;
    // The service may not be running: bring the projections up to the log first.
    authledger::projector::Projector::new(
        state.projections.clone(),
        state.log.clone(),
        state.metrics.clone(),
    )
    .catch_up()
    .await?;
    anyhow::ensure!(
        state.projections.workspace(workspace).await?.is_some(),
        "no workspace {workspace}"
    );
    authledger::commands::audit::record_query_by(
        &state,
        workspace,
        &authledger::ledger::Actor::system("cli-export"),
        "/cli/audit/export",
        given.clone(),
    )
    .await?;
    let mut rx = authledger::audit::export::start(
        state.clone(),
        workspace.to_string(),
        filter,
        given,
        format,
    );
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    while let Some(chunk) = rx.recv().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(ExitCode::SUCCESS)
}

/// `export --follow`: the workspace's events from the log as they are appended, one line
/// each, flushed at once; recorded as `audit.queried` first.
async fn follow_export(
    storage: &StorageArgs,
    workspace: &str,
    kind: Option<String>,
    from_position: Option<u64>,
) -> anyhow::Result<ExitCode> {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let state = AppState::open(storage).await?;
    authledger::projector::Projector::new(
        state.projections.clone(),
        state.log.clone(),
        state.metrics.clone(),
    )
    .catch_up()
    .await?;
    anyhow::ensure!(
        state.projections.workspace(workspace).await?.is_some(),
        "no workspace {workspace}"
    );
    let from = match from_position {
        Some(p) => p,
        None => state.log.head().await? + 1,
    };
    let mut given = std::collections::BTreeMap::new();
    given.insert("follow".to_string(), "true".to_string());
    given.insert("from_position".to_string(), from.to_string());
    if let Some(k) = &kind {
        given.insert("kind".to_string(), k.clone());
    }
    authledger::commands::audit::record_query_by(
        &state,
        workspace,
        &authledger::ledger::Actor::system("cli-export"),
        "/cli/audit/export",
        given,
    )
    .await?;
    let filter = authledger::audit::follow::FollowFilter {
        workspace_id: workspace.to_string(),
        kind,
    };
    let mut lines = authledger::audit::follow::follow(&state, filter, from).await?;
    let mut out = tokio::io::stdout();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(line) => {
                    out.write_all(line?.as_bytes()).await?;
                    out.flush().await?;
                }
                None => return Ok(ExitCode::SUCCESS),
            },
            _ = term.recv() => return Ok(ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests within the grace period");
}

async fn keys(storage: &StorageArgs, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let dir = KeyDir::new(storage.key_dir());
    match cmd {
        KeysCommand::Init => {
            let signer = dir.init()?;
            let master = authledger::crypto::master::load_master_file(dir.path(), true)?;
            println!(
                "created signing key {} and master key {} in {}",
                signer.key_id(),
                master.id(),
                dir.path().display()
            );
        }
        KeysCommand::RotateMaster => {
            let (id, n) = ops::rotate_master_key(storage).await?;
            println!("re-wrapped {n} data keys under master key {id}");
        }
        KeysCommand::Rotate => {
            let state = AppState::open(storage).await?;
            let rotated = ops::rotate_signing_key(storage, &state.ledger).await?;
            println!(
                "rotated signing key {} -> {}",
                rotated.previous_key_id, rotated.new_key_id
            );
        }
        KeysCommand::Show => print_json(&dir.read_ring()?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends `count` workspace-created events from `writers` tasks (each on its own
/// aggregates), printing a line per acknowledged append. Errors are printed, not fatal.
async fn debug_append(storage: &StorageArgs, count: u64, writers: u64) -> anyhow::Result<ExitCode> {
    let signer = app::load_signer(storage)?;
    let (log, _) = app::open_log(storage, Access::Write).await?;
    let ledger = Arc::new(authledger::ledger::Ledger::new(
        log,
        signer,
        Arc::new(authledger::clock::SystemClock),
        authledger::metrics::Metrics::new(),
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let per_writer = count.div_ceil(writers.max(1));
    let mut tasks = Vec::new();
    for w in 0..writers.max(1) {
        let ledger = ledger.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let Ok(key) = AggregateKey::new("load", "workspace", format!("w{w}-{i}")) else {
                    continue;
                };
                let event = Event::WorkspaceCreated(authledger::domain::WorkspaceCreated {
                    name: format!("load {w} {i}"),
                });
                let line = match ledger
                    .append_next(&key, &Actor::system("debug-append"), &event)
                    .await
                {
                    Ok(c) => format!("ok {} {}", c.event_id, c.position),
                    Err(e) => format!("err {e}"),
                };
                if tx.send(line).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some(line) = rx.recv().await {
        // Flushed per line: a line printed is an append acknowledged.
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    for t in tasks {
        t.await?;
    }
    Ok(ExitCode::SUCCESS)
}

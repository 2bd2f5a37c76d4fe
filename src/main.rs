//! The `authledger` command line: the arguments, then each subcommand's module in `cli/`.

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Requests allocate and free on every runtime thread: mimalloc's per-thread heaps cost a
// fraction of glibc malloc's arenas there (BENCHMARKS.md, agents suite).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use authledger::app::{self, Access, AppState};
use authledger::config::StorageArgs;
use authledger::ops;

use cli::print_json;
use cli::serve::DEFAULT_ADMIN_EMAIL;

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

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (embedded SQLite by default; --nats-url / --database-url to scale).
    /// Run the HTTP service (embedded SQLite by default; --nats-url / --database-url to scale).
    Serve(cli::serve::ServeArgs),
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
    Verify(cli::verify::VerifyArgs),
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
    Export(cli::export::ExportArgs),
    /// Write the raw log as JSON lines (`position`, `subject`, `aggregate_version`,
    /// `event_id`, `envelope` as stored; schemas/README.md §6a) for an independent verifier
    /// such as tools/verifier/verify.py. Dumps damaged logs too.
    DumpLog,
    /// Cosign the log's checkpoints as an independent witness (C2SP tlog-cosignature) with
    /// its own key, refusing any checkpoint that does not extend the last one it cosigned.
    Witness(cli::operator::WitnessArgs),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(cli::operator::KeysCommand),
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

fn main() -> ExitCode {
    // Before the runtime and its threads allocate: RSS then follows live data.
    authledger::memory::without_huge_pages();
    let cli = Cli::parse();
    let (telemetry, log_lines) = init_logging(cli.log_format);
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
    // Every line logged so far written out before anything else is printed.
    drop(log_lines);
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
///
/// The lines are written by a thread of their own (`tracing_appender::non_blocking`), in
/// batches, not by the thread that logs: a request's log line never waits for stderr, and a
/// reader of stderr that stalls (a full pipe) holds up no request until
/// [`LOG_LINES_BUFFERED`] lines wait; then logging waits for it (no line is dropped). The
/// guard returned writes out what is left when dropped.
fn init_logging(
    format: Option<LogFormat>,
) -> (
    Option<authledger::telemetry::Telemetry>,
    tracing_appender::non_blocking::WorkerGuard,
) {
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
    let (stderr, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .lossy(false)
        .thread_name("authledger-stderr")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let lines = tracing_subscriber::fmt::layer().with_writer(stderr);
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
    (telemetry, guard)
}

/// Log lines waiting for stderr before logging waits for it.
const LOG_LINES_BUFFERED: usize = 100_000;

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let storage = cli.storage;
    match cli.command {
        Command::Serve(args) => cli::serve::run(&storage, args).await,
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
        Command::Verify(args) => cli::verify::run(&storage, &args).await,
        Command::Export(args) => cli::export::run(&storage, args).await,
        Command::Replay { projection, until } => {
            cli::verify::replay(&storage, &projection, until).await
        }
        Command::Keys(k) => cli::operator::keys(&storage, k).await,
        Command::Witness(w) => cli::operator::witness(w).await,
        Command::DumpLog => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let (log, _) = app::open_log(&storage, Access::Read).await?;
            let n = authledger::ledger::dump::dump_log(log, &storage.nats_subject_prefix, &mut out)
                .await?;
            out.flush()?;
            eprintln!("dumped {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Command::DebugAppend { count, writers } => {
            cli::operator::debug_append(&storage, count, writers).await
        }
    }
}

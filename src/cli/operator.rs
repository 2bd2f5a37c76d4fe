//! The operator's commands: keys, the witness, and the debug appender the crash tests use.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use authledger::app::{self, Access, AppState};
use authledger::config::StorageArgs;
use authledger::domain::Event;
use authledger::ledger::{Actor, AggregateKey, KeyDir};
use authledger::ops;

use super::print_json;

#[derive(clap::Args)]
pub struct WitnessArgs {
    /// The witness's own directory: its key (created on first run), the last checkpoint it
    /// cosigned, its status.
    #[arg(long, value_name = "DIR")]
    pub key_dir: std::path::PathBuf,
    /// The service's base URL.
    #[arg(long, value_name = "URL")]
    pub log_url: String,
    /// An API key of role auditor.
    #[arg(long, env = "AUTHLEDGER_WITNESS_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// The witness's name, fixed when its key is created (default
    /// `authledger-witness/<key prefix>`).
    #[arg(long)]
    pub name: Option<String>,
    /// The log's public key (base64 of 32 bytes) to check checkpoint signatures with;
    /// repeatable. Default: the keys the log publishes at /.well-known/jwks.json.
    #[arg(long = "log-key")]
    pub log_keys: Vec<String>,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 60)]
    pub interval_secs: u64,
    /// One round, then exit: 0 cosigned or nothing new, 1 refused, 2 the log could not be read.
    #[arg(long)]
    pub once: bool,
}

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create a signing key in the key dir (for deployments that share one key).
    Init,
    /// Rotate the signing key; the rotation event is signed by the outgoing key.
    Rotate,
    /// Print the public key ring (JSON).
    Show,
    /// Re-wrap every data key under a new master key (the old master leaves the key dir).
    RotateMaster,
}

/// `authledger witness`: one round with `--once` (exit 0 / 1 refused / 2 error), else a
/// round every `--interval-secs` until interrupted.
pub async fn witness(args: WitnessArgs) -> anyhow::Result<ExitCode> {
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

pub async fn keys(storage: &StorageArgs, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
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
pub async fn debug_append(
    storage: &StorageArgs,
    count: u64,
    writers: u64,
) -> anyhow::Result<ExitCode> {
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

//! `authledger verify` and `replay`: the log checked against the keys trusted, then against
//! the anchors outside it; the projections rebuilt from it.

use std::process::ExitCode;

use anyhow::Context as _;

use authledger::app::{self, Access};
use authledger::config::StorageArgs;
use authledger::ops;

use super::print_json;

/// Settings of `verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Print a machine-readable JSON report.
    #[arg(long)]
    pub json: bool,
    /// Pin this public key (base64 of 32 bytes) instead of the data dir's ring.json;
    /// repeatable. Keys named by rotation events signed by a trusted key follow.
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<String>,
    /// Pin the keys of a ring.json-format file kept outside the data dir; repeatable.
    #[arg(long = "ring", value_name = "FILE")]
    pub rings: Vec<std::path::PathBuf>,
    /// Signature-checking threads (default: the CPU count, at most 8); the verdict never
    /// depends on it.
    #[arg(long, hide = true)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub anchors: AnchorArgs,
}

#[derive(clap::Args)]
pub struct AnchorArgs {
    /// A checkpoint note recorded earlier (e.g. the witness's `checkpoint` file): the log
    /// must hold its tree size and its first events must hash to its root.
    #[arg(long, value_name = "FILE")]
    pub trust_checkpoint: Option<std::path::PathBuf>,
    /// A witness's verifier key (`<name>+<hex>+<base64>`, or a file holding it, such as its
    /// `witness.vkey`): the log must hold a valid cosignature by it. Repeatable.
    #[arg(long = "witness-key", value_name = "VKEY|FILE")]
    pub witness_keys: Vec<String>,
}

/// Runs `verify` with its settings.
pub async fn run(storage: &StorageArgs, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    verify(
        storage,
        args.json,
        (&args.trusted_keys, &args.rings),
        args.threads,
        &args.anchors,
    )
    .await
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

/// `replay`: rebuilds the projections from the log (up to `until`).
pub async fn replay(
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

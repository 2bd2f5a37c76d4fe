//! The command line's subcommands, one module each; `main.rs` parses and dispatches.

pub mod export;
pub mod operator;
pub mod serve;
pub mod verify;

use std::io::Write as _;

/// Prints one pretty JSON document on stdout.
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

//! Storage options shared by every subcommand, so `serve`, `verify`, `bootstrap` and
//! `replay` all run against the same log. Flags win over environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use std::str::FromStr;

use crate::ledger::jetstream_log::JetStreamOptions;

/// Largest request body accepted by every face (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a request waits for a PostgreSQL connection (projections, data keys) before it
/// is answered 503. While the database is down every wait runs to this bound, so it is
/// short: a client hears "unavailable" in seconds rather than holding its request through
/// the outage. The projector itself retries on its own schedule.
pub const PG_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
#[error("invalid cron schedule {schedule:?}: {reason}")]
pub struct ScheduleError {
    schedule: String,
    reason: String,
}

/// A cron schedule (six fields: seconds first), as the scheduled jobs take it.
pub fn parse_schedule(s: &str) -> Result<cron::Schedule, ScheduleError> {
    cron::Schedule::from_str(s).map_err(|e| ScheduleError {
        schedule: s.to_string(),
        reason: e.to_string(),
    })
}

#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Data directory of the embedded default (SQLite log and projections, keys).
    #[arg(
        long,
        env = "AUTHLEDGER_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Use this NATS JetStream server for the event log instead of the embedded SQLite log.
    #[arg(long, env = "AUTHLEDGER_NATS_URL", global = true)]
    pub nats_url: Option<String>,

    /// JetStream stream that holds the log.
    #[arg(
        long,
        env = "AUTHLEDGER_NATS_STREAM",
        default_value = "AUTHLEDGER",
        global = true
    )]
    pub nats_stream: String,

    /// Subject prefix of the log (`<prefix>.<workspace>.<aggregate_type>.<aggregate_id>`).
    #[arg(
        long,
        env = "AUTHLEDGER_NATS_SUBJECT_PREFIX",
        default_value = "ledger",
        global = true
    )]
    pub nats_subject_prefix: String,

    /// Stream replicas when the stream is created (1, or 3 on a cluster).
    #[arg(
        long,
        env = "AUTHLEDGER_NATS_REPLICAS",
        default_value_t = 1,
        global = true
    )]
    pub nats_replicas: usize,

    /// JetStream duplicate window in seconds (retries within it are deduplicated by event id).
    #[arg(
        long,
        env = "AUTHLEDGER_NATS_DUPLICATE_WINDOW_SECS",
        default_value_t = 120,
        global = true
    )]
    pub nats_duplicate_window_secs: u64,

    /// Use this PostgreSQL database for projections instead of SQLite in the data dir.
    #[arg(
        long,
        env = "AUTHLEDGER_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Directory of the signing key and key ring (default: <data-dir>/keys). The signing key
    /// can instead come from AUTHLEDGER_SIGNING_KEY (base64 of a 32-byte ed25519 seed).
    #[arg(long, env = "AUTHLEDGER_KEY_DIR", global = true)]
    pub key_dir: Option<PathBuf>,
}

impl StorageArgs {
    pub fn key_dir(&self) -> PathBuf {
        self.key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }

    pub fn embedded_log(&self) -> bool {
        self.nats_url.is_none()
    }

    pub fn jetstream(&self) -> Option<JetStreamOptions> {
        self.nats_url.as_ref().map(|url| {
            let mut o = JetStreamOptions::new(url.clone());
            o.stream = self.nats_stream.clone();
            o.subject_prefix = self.nats_subject_prefix.clone();
            o.replicas = self.nats_replicas;
            o.duplicate_window = Duration::from_secs(self.nats_duplicate_window_secs);
            o
        })
    }
}

//! Wiring: storage options to a log, projections, signer and ledger; the operations the CLI
//! runs (bootstrap, rotation, replay, verify) and the HTTP service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::config::StorageArgs;
use crate::domain::api_key::{ApiKey, ApiKeyCommand, NewApiKey};
use crate::domain::signing_key::{Rotate, SigningKeyRing, RING_ID};
use crate::domain::workspace::{Workspace, WorkspaceCommand};
use crate::domain::{ApiKeyCreated, Role, SigningKeyRotated, SYSTEM_WORKSPACE};
use crate::ledger::jetstream_log::JetStreamEventLog;
use crate::ledger::keys::KeyError;
use crate::ledger::sqlite_log::SqliteEventLog;
use crate::ledger::verify::{verify_log, VerifyReport};
use crate::ledger::{Actor, EventLog, KeyDir, KeyRing, Ledger, LedgerError, LogError, Signer};
use crate::metrics::Metrics;
use crate::projector::{
    PgProjections, ProjectionError, ProjectionStore, Projector, SqliteProjections,
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("{0}")]
    Io(String),
}

/// Whether the log is opened to write (refuses unfit streams) or only to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    Read,
}

/// Opens the event log the options name. Returns it with any stream warnings.
pub async fn open_log(
    args: &StorageArgs,
    access: Access,
) -> Result<(Arc<dyn EventLog>, Vec<String>), AppError> {
    match args.jetstream() {
        Some(opts) => {
            let log = match access {
                Access::Write => JetStreamEventLog::open(opts).await?,
                Access::Read => JetStreamEventLog::open_read_only(opts).await?,
            };
            let warnings = log.warnings.clone();
            Ok((Arc::new(log), warnings))
        }
        None => {
            let path = args.data_dir.join("ledger.db");
            if access == Access::Read && !path.exists() {
                return Err(AppError::Io(format!(
                    "no event log at {} (wrong --data-dir?)",
                    path.display()
                )));
            }
            std::fs::create_dir_all(&args.data_dir).map_err(|e| {
                AppError::Io(format!(
                    "cannot create data dir {}: {e}",
                    args.data_dir.display()
                ))
            })?;
            Ok((Arc::new(SqliteEventLog::open(&path).await?), Vec::new()))
        }
    }
}

pub async fn open_projections(args: &StorageArgs) -> Result<Arc<dyn ProjectionStore>, AppError> {
    match &args.database_url {
        Some(url) => Ok(Arc::new(PgProjections::open(url).await?)),
        None => {
            std::fs::create_dir_all(&args.data_dir).map_err(|e| {
                AppError::Io(format!(
                    "cannot create data dir {}: {e}",
                    args.data_dir.display()
                ))
            })?;
            Ok(Arc::new(
                SqliteProjections::open(&args.data_dir.join("projections.db")).await?,
            ))
        }
    }
}

/// The vault that seals secrets: master key from `AUTHLEDGER_MASTER_KEY` or the key dir
/// (generated only for the fully embedded default, like the signing key), data keys in
/// PostgreSQL when a database URL is given, else in `<data-dir>/data_keys.db`. The data-key
/// store is not a projection: it is not rebuilt from the log, and losing it loses secrets.
pub async fn open_vault(args: &StorageArgs) -> Result<Arc<crate::crypto::Vault>, AppError> {
    use crate::crypto::{load_master_keys, DataKeyStore, PgDataKeys, SqliteDataKeys, Vault};
    let create = args.embedded_log() && args.database_url.is_none();
    let keys = load_master_keys(&args.key_dir(), create)?;
    let store: Arc<dyn DataKeyStore> = match &args.database_url {
        Some(url) => Arc::new(PgDataKeys::open(url).await?),
        None => {
            std::fs::create_dir_all(&args.data_dir).map_err(|e| {
                AppError::Io(format!(
                    "cannot create data dir {}: {e}",
                    args.data_dir.display()
                ))
            })?;
            Arc::new(SqliteDataKeys::open(&args.data_dir.join("data_keys.db")).await?)
        }
    };
    Ok(Arc::new(Vault::with_keys(keys, store).await?))
}

/// Re-wraps every data key under a new master key (staged in the key dir first, so a
/// crash resumes with the same key), then makes it the key dir's master key.
pub async fn rotate_master_key(args: &StorageArgs) -> Result<(String, usize), AppError> {
    use crate::crypto::master::{promote_next_master, stage_next_master};
    if std::env::var(crate::crypto::MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        return Err(AppError::Io(format!(
            "the master key comes from {}; rotate it with the multi-instance procedure (accept, rotate, promote)",
            crate::crypto::MASTER_KEY_ENV
        )));
    }
    let vault = open_vault(args).await?;
    let next = stage_next_master(&args.key_dir())?;
    let id = next.id().to_string();
    let n = vault.rotate_master(next).await?;
    promote_next_master(&args.key_dir())?;
    Ok((id, n))
}

/// The signing key: `AUTHLEDGER_SIGNING_KEY` if set, else the key dir. A key is generated
/// only for the embedded default: instances sharing a JetStream log must share one key.
pub fn load_signer(args: &StorageArgs) -> Result<Signer, AppError> {
    if let Ok(seed) = std::env::var("AUTHLEDGER_SIGNING_KEY") {
        return Ok(Signer::from_base64_seed(&seed, "AUTHLEDGER_SIGNING_KEY")?);
    }
    Ok(KeyDir::new(args.key_dir()).load_signer(args.embedded_log())?)
}

/// Public keys a verifier trusts: the key dir's ring, the env key, and `extra` (base64).
pub fn trusted_keys(args: &StorageArgs, extra: &[String]) -> Result<KeyRing, AppError> {
    let mut ring = KeyDir::new(args.key_dir()).trusted()?;
    if let Ok(seed) = std::env::var("AUTHLEDGER_SIGNING_KEY") {
        ring.insert(Signer::from_base64_seed(&seed, "AUTHLEDGER_SIGNING_KEY")?.public_key());
    }
    for k in extra {
        ring.add_base64(k, "--trusted-key")?;
    }
    if ring.is_empty() {
        return Err(KeyError::NoTrust.into());
    }
    Ok(ring)
}

#[derive(Debug, Serialize)]
pub struct Bootstrapped {
    pub workspace_id: String,
    pub api_key_id: String,
    /// Shown once; only its hash is stored.
    pub admin_api_key: String,
    pub position: u64,
}

/// Creates a workspace and its first admin API key.
pub async fn bootstrap(ledger: &Ledger, name: &str) -> Result<Bootstrapped, AppError> {
    let actor = Actor::system("bootstrap");
    let workspace_id = Uuid::now_v7().to_string();
    ledger
        .execute::<Workspace>(
            &workspace_id,
            &workspace_id,
            &actor,
            &WorkspaceCommand::Create {
                name: name.to_string(),
            },
        )
        .await?;
    let key = NewApiKey::generate(&mut rand::rngs::OsRng);
    let api_key_id = Uuid::now_v7().to_string();
    let created = ApiKeyCreated {
        name: "bootstrap admin".into(),
        role: Role::Admin,
        key_prefix: key.key_prefix.clone(),
        key_hash: key.key_hash.clone(),
        expires_at: None,
    };
    let committed = ledger
        .execute::<ApiKey>(
            &workspace_id,
            &api_key_id,
            &actor,
            &ApiKeyCommand::Create(created),
        )
        .await?;
    Ok(Bootstrapped {
        workspace_id,
        api_key_id,
        admin_api_key: key.secret.expose_secret().to_string(),
        position: committed.position,
    })
}

/// Rotates the signing key: the rotation event is signed by the outgoing key, then the
/// staged key becomes active. Key-dir keys only (an env key is rotated by the operator).
pub async fn rotate_signing_key(
    args: &StorageArgs,
    ledger: &Ledger,
) -> Result<SigningKeyRotated, AppError> {
    if std::env::var("AUTHLEDGER_SIGNING_KEY").is_ok() {
        return Err(AppError::Io(
            "the signing key comes from AUTHLEDGER_SIGNING_KEY; rotate with a key dir instead"
                .into(),
        ));
    }
    let dir = KeyDir::new(args.key_dir());
    let current = ledger.signer();
    let next = dir.stage_next()?;
    use base64::Engine as _;
    let rotated = SigningKeyRotated {
        previous_key_id: current.key_id().to_string(),
        new_key_id: next.key_id().to_string(),
        new_public_key: base64::engine::general_purpose::STANDARD
            .encode(next.public_key().as_bytes()),
    };
    ledger
        .execute::<SigningKeyRing>(
            SYSTEM_WORKSPACE,
            RING_ID,
            &Actor::system("keys-rotate"),
            &Rotate(rotated.clone()),
        )
        .await?;
    dir.promote_next(&next)?;
    ledger.replace_signer(next);
    Ok(rotated)
}

pub async fn verify(args: &StorageArgs, extra_keys: &[String]) -> Result<VerifyReport, AppError> {
    let (log, warnings) = open_log(args, Access::Read).await?;
    let trusted = trusted_keys(args, extra_keys)?;
    Ok(verify_log(log, trusted, warnings).await?)
}

/// Writes every event as a JSON line `{"position", "subject", "envelope"}` (the envelope
/// bytes as stored, which are UTF-8 JSON). Returns the number of events.
pub async fn dump_log(args: &StorageArgs, out: &mut impl std::io::Write) -> Result<u64, AppError> {
    let (log, _) = open_log(args, Access::Read).await?;
    let head = log.head().await?;
    let mut next = 1;
    let mut n = 0;
    while next <= head {
        let page = log.read_from(next, 4096).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in page.iter().take_while(|e| e.position <= head) {
            let envelope = std::str::from_utf8(&e.envelope).map_err(|_| {
                AppError::Io(format!("event at position {} is not UTF-8", e.position))
            })?;
            let line = serde_json::json!({
                "position": e.position,
                "subject": e.key.subject(&args.nats_subject_prefix),
                "envelope": envelope,
            });
            serde_json::to_writer(&mut *out, &line).map_err(|e| AppError::Io(e.to_string()))?;
            out.write_all(b"\n")
                .map_err(|e| AppError::Io(e.to_string()))?;
            n += 1;
        }
        next = last + 1;
    }
    Ok(n)
}

/// Where `replay --until` stops: after a log position, or after the last event whose
/// `occurred_at` is at or before a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayUntil {
    Position(u64),
    Time(time::OffsetDateTime),
}

impl ReplayUntil {
    /// A log position (an integer) or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<ReplayUntil, AppError> {
        let s = s.trim();
        if let Ok(p) = s.parse::<u64>() {
            return Ok(ReplayUntil::Position(p));
        }
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(ReplayUntil::Time)
            .map_err(|_| {
                AppError::Io(format!(
                    "--until {s:?} is neither a log position (an integer) nor an RFC 3339 time"
                ))
            })
    }
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Events applied to the rebuilt projections.
    pub events: u64,
    /// The log position the projections now end at (the state "as of" this position).
    pub position: u64,
    /// The log head when the replay started.
    pub head: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
}

/// Rebuilds `projection` from the log into fresh tables and swaps them in, so readers never
/// see a half-built projection: embedded, a new `projections.db` is built next to the old
/// one and renamed over it (refused while another process, such as `serve`, has the old one
/// open); PostgreSQL, the tables are emptied and refilled in one transaction (readers see
/// the old rows until it commits). `until` stops the rebuild early; a later `serve` catches
/// up from there again. The progress bar is drawn on stderr when `show_progress`.
pub async fn replay(
    args: &StorageArgs,
    projection: &str,
    until: Option<ReplayUntil>,
    show_progress: bool,
) -> Result<ReplayReport, AppError> {
    use crate::projector::store::PROJECTIONS;
    if !PROJECTIONS.contains(&projection) {
        return Err(AppError::Io(format!(
            "unknown projection {projection:?} (valid: {})",
            PROJECTIONS.join(", ")
        )));
    }
    let started = std::time::Instant::now();
    let (log, _) = open_log(args, Access::Read).await?;
    let head = log.head().await?;
    let bar = replay_progress_bar(show_progress);
    let target = match until {
        None => head,
        Some(ReplayUntil::Position(p)) => p.min(head),
        Some(ReplayUntil::Time(t)) => {
            bar.set_length(head);
            bar.set_message("finding the last event at or before --until");
            last_position_at_or_before(log.as_ref(), head, t, &bar).await?
        }
    };
    bar.set_length(target);
    bar.set_position(0);
    bar.set_message(format!("replaying {projection}"));
    let progress = |n: u64| bar.set_position(n);
    let rebuilt = match &args.database_url {
        Some(url) => {
            let store = PgProjections::open(url).await?;
            let n = store.rebuild(log.as_ref(), target, &progress).await;
            store.pool().close().await;
            n?
        }
        None => rebuild_embedded_projections(args, log.as_ref(), target, &progress).await?,
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(ReplayReport {
        events: rebuilt,
        position: target,
        head,
        seconds,
        events_per_sec: if seconds > 0.0 {
            rebuilt as f64 / seconds
        } else {
            0.0
        },
    })
}

/// A progress bar on stderr; hidden unless asked for and stderr is a terminal.
fn replay_progress_bar(show: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {human_pos}/{human_len} events (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("reading the log");
    bar
}

/// The position of the last event (highest position up to `head`) whose body's
/// `occurred_at` is at or before `t`; 0 if none.
async fn last_position_at_or_before(
    log: &dyn EventLog,
    head: u64,
    t: time::OffsetDateTime,
    bar: &indicatif::ProgressBar,
) -> Result<u64, AppError> {
    let mut next = 1;
    let mut found = 0;
    while next <= head {
        let page = log.read_from(next, 4096).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in page.iter().take_while(|e| e.position <= head) {
            let opened = crate::ledger::envelope::open_envelope(&e.envelope).map_err(|err| {
                AppError::Io(format!(
                    "event at position {} cannot be read: {err}",
                    e.position
                ))
            })?;
            if opened.body.occurred_at <= t {
                found = e.position;
            }
        }
        bar.set_position(last.min(head));
        next = last + 1;
    }
    Ok(found)
}

/// Embedded projections: builds `<data-dir>/projections.db.replay-<id>` (same migrations),
/// folds its WAL into the file, then renames it over `projections.db`. A failure leaves the
/// old projections as they were and removes the new file.
async fn rebuild_embedded_projections(
    args: &StorageArgs,
    log: &dyn EventLog,
    until: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, AppError> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        AppError::Io(format!(
            "cannot create data dir {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let live = args.data_dir.join("projections.db");
    let fresh = args
        .data_dir
        .join(format!("projections.db.replay-{}", Uuid::now_v7().simple()));
    let result = async {
        use sqlx::Connection as _;
        let store = SqliteProjections::open(&fresh).await?;
        let rebuilt = store.rebuild(log, until, progress).await;
        store.close().await;
        let rebuilt = rebuilt?;
        // One self-contained file: no WAL may be left behind (it would not follow the rename).
        sqlite_leave_wal(&fresh, false)
            .await?
            .close()
            .await
            .map_err(sqlite_err(&fresh))?;
        for suffix in ["-wal", "-shm"] {
            if sqlite_sidecar(&fresh, suffix).exists() {
                return Err(AppError::Io(format!(
                    "the rebuilt projections {} still have a {suffix} file",
                    fresh.display()
                )));
            }
        }
        std::fs::File::open(&fresh)
            .and_then(|f| f.sync_all())
            .map_err(|e| AppError::Io(format!("cannot sync {}: {e}", fresh.display())))?;
        swap_in(&fresh, &live).await?;
        Ok(rebuilt)
    }
    .await;
    if result.is_err() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(sqlite_sidecar(&fresh, suffix));
        }
    }
    result
}

fn sqlite_sidecar(db: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

fn sqlite_err(path: &std::path::Path) -> impl Fn(sqlx::Error) -> AppError + '_ {
    move |e| AppError::Io(format!("projections {}: {e}", path.display()))
}

/// Opens one connection to an existing SQLite database and switches it from WAL to the
/// rollback journal: SQLite checkpoints the whole WAL into the file and deletes it. That
/// needs the only connection to the file, so it fails while another process has it open.
async fn sqlite_leave_wal(
    path: &std::path::Path,
    quick: bool,
) -> Result<sqlx::SqliteConnection, AppError> {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(if quick { 2 } else { 10 }));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(sqlite_err(path))?;
    let in_use = || {
        AppError::Io(format!(
            "the projections {} are in use by another process: stop `authledger serve` on this data dir, then replay",
            path.display()
        ))
    };
    let mode: String = match sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut conn)
        .await
    {
        Ok(mode) => mode,
        Err(sqlx::Error::Database(e)) if e.message().contains("locked") => return Err(in_use()),
        Err(e) => return Err(sqlite_err(path)(e)),
    };
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use());
    }
    Ok(conn)
}

/// Renames `fresh` over `live`, holding an exclusive lock on the old file meanwhile so no
/// process reads or writes it during the swap. The old file's WAL is folded in and removed
/// first: a WAL left beside the path would be applied to the new file.
async fn swap_in(fresh: &std::path::Path, live: &std::path::Path) -> Result<(), AppError> {
    use sqlx::Connection as _;
    let rename = || {
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = sqlite_sidecar(live, suffix);
            if side.exists() {
                std::fs::remove_file(&side)
                    .map_err(|e| AppError::Io(format!("cannot remove {}: {e}", side.display())))?;
            }
        }
        std::fs::rename(fresh, live).map_err(|e| {
            AppError::Io(format!(
                "cannot rename {} to {}: {e}",
                fresh.display(),
                live.display()
            ))
        })?;
        if let Some(dir) = live.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| AppError::Io(format!("cannot sync {}: {e}", dir.display())))?;
        }
        Ok::<(), AppError>(())
    };
    if !live.exists() {
        return rename();
    }
    let mut old = sqlite_leave_wal(live, true).await?;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut old)
        .await
        .map_err(sqlite_err(live))?;
    let renamed = rename();
    // The lock is on the old file, which the rename unlinked: release it either way.
    let _ = sqlx::query("ROLLBACK").execute(&mut old).await;
    let _ = old.close().await;
    renamed
}

/// Everything a running service holds, behind one `Arc`: every request clones its
/// handle, so a clone is one reference count, not a copy of the settings (two parsed cron
/// schedules and a URL among them).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl AppState {
    /// The settings to change before the service starts; `None` once the state is shared
    /// (a change then would reach only this handle).
    pub fn configure(&mut self) -> Option<&mut AppStateInner> {
        Arc::get_mut(&mut self.0)
    }
}

/// What [`AppState`] holds.
pub struct AppStateInner {
    pub ledger: Arc<Ledger>,
    pub log: Arc<dyn EventLog>,
    pub projections: Arc<dyn ProjectionStore>,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub rate_limiter: Arc<crate::api::ratelimit::RateLimiter>,
    /// Per client address: refused requests (each an `access.denied` event) and OAuth
    /// callbacks, so refusals cannot flood the ledger.
    pub denial_limiter: Arc<crate::api::ratelimit::RateLimiter>,
    pub identity: Arc<crate::identity::JwksCache>,
    /// Whether an identity provider's JWKS may be fetched over plain http from this
    /// machine's loopback interface (development and tests; off in production, where it
    /// would let a workspace admin make the service call local endpoints).
    pub allow_loopback_urls: bool,
    pub vault: Arc<crate::crypto::Vault>,
    /// Connect flow, refresh and revocation settings (public URL, refresh buffer, retries).
    pub connections: crate::commands::connections::ConnectionSettings,
    pub oauth: Arc<crate::oauth::OAuthClient>,
    pub refresh_locks: Arc<crate::commands::connections::RefreshLocks>,
    /// The public keys this service trusts (its key dir's ring), for audit reads.
    pub trusted_keys: Arc<KeyRing>,
    /// When signed checkpoints are appended (`None`: never).
    pub checkpoint_schedule: Option<cron::Schedule>,
    /// The Merkle tree of the log as far as the last checkpoint tick read it.
    pub checkpoint_tree: Arc<tokio::sync::Mutex<crate::audit::merkle::CompactRange>>,
    /// Gateway settings (upstream timeout, retries of idempotent calls).
    pub gateway: crate::commands::agents::gateway::GatewaySettings,
    /// The gateway's upstream client: never follows redirects (they could carry the
    /// injected credential to another host).
    pub gateway_http: reqwest::Client,
    /// Workspace tools compiled once per stored definition.
    pub compiled_tools: Arc<crate::tools::CompiledTools>,
    /// What the projector reports and readiness judges (lag, stall, a stuck event).
    pub projection_health: Arc<crate::projector::ProjectionHealth>,
}

impl AppState {
    pub async fn open(args: &StorageArgs) -> Result<AppState, AppError> {
        let signer = load_signer(args)?;
        let (log, _) = open_log(args, Access::Write).await?;
        let projections = open_projections(args).await?;
        let metrics = Metrics::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ledger = Arc::new(Ledger::new(
            log.clone(),
            signer,
            clock.clone(),
            metrics.clone(),
        ));
        let rate_limiter = Arc::new(crate::api::ratelimit::RateLimiter::new(50.0, 100.0));
        let denial_limiter = Arc::new(crate::api::ratelimit::RateLimiter::new(10.0, 100.0));
        let identity = Arc::new(crate::identity::JwksCache::new());
        let vault = open_vault(args).await?;
        let connections = crate::commands::connections::ConnectionSettings::default();
        let oauth = Arc::new(
            crate::oauth::OAuthClient::new(connections.provider_timeout)
                .map_err(|e| AppError::Io(format!("cannot build the OAuth client: {e}")))?,
        );
        Ok(AppState(Arc::new(AppStateInner {
            ledger,
            log,
            projections,
            metrics,
            clock,
            rate_limiter,
            denial_limiter,
            identity,
            allow_loopback_urls: false,
            vault,
            connections,
            oauth,
            refresh_locks: Arc::default(),
            trusted_keys: Arc::new(trusted_keys(args, &[])?),
            checkpoint_schedule: crate::scheduler::parse_schedule(
                crate::audit::checkpoints::DEFAULT_CHECKPOINT_SCHEDULE,
            )
            .ok(),
            checkpoint_tree: Arc::default(),
            gateway: crate::commands::agents::gateway::GatewaySettings::default(),
            gateway_http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("authledger/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| AppError::Io(format!("cannot build the gateway client: {e}")))?,
            compiled_tools: Arc::default(),
            projection_health: Arc::new(crate::projector::ProjectionHealth::new(
                crate::projector::ReadinessBounds::default(),
                std::time::Instant::now(),
            )),
        })))
    }
}

/// Serves the API on `listener` until `shutdown` resolves; the projector runs alongside.
/// In-flight requests (and so in-flight appends) finish before this returns.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let projector = Projector::new(
        state.projections.clone(),
        state.log.clone(),
        state.metrics.clone(),
    )
    .reporting_to(state.projection_health.clone());
    // Catch up before the first request: authentication reads the projections, and a key
    // created before this start (the first-run admin key among them) must work at once.
    if let Err(e) = projector.catch_up().await {
        tracing::warn!(error = %e, "projections could not catch up at start; serving while they retry");
    }
    let scheduler_task = state.connections.refresh_schedule.clone().map(|schedule| {
        tokio::spawn(crate::scheduler::run_refresh_scheduler(
            state.clone(),
            schedule,
            stop_rx.clone(),
        ))
    });
    let checkpoint_task = state.checkpoint_schedule.clone().map(|schedule| {
        tokio::spawn(crate::audit::checkpoints::run_checkpointer(
            state.clone(),
            schedule,
            stop_rx.clone(),
        ))
    });
    let projector_task = tokio::spawn(projector.run(stop_rx));
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, log = %state.log.describe(), projections = %state.projections.describe(), "serving");
    let router = crate::api::router(state);
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), projector_task).await;
    for task in [scheduler_task, checkpoint_task].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    result.map_err(|e| AppError::Io(format!("server error: {e}")))
}

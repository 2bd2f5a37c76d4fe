//! The services the commands run on, wired from `config::StorageArgs`: the event log,
//! projections, signer and ledger, the vault, and the per-area settings and clients
//! (`AppState`). No HTTP here: the faces (`server`, `api`, `mcp`) hold the request side.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::StorageArgs;
use crate::ledger::jetstream_log::JetStreamEventLog;
use crate::ledger::keys::KeyError;
use crate::ledger::sqlite_log::SqliteEventLog;
use crate::ledger::{EventLog, KeyDir, KeyRing, Ledger, LedgerError, LogError, Signer};
use crate::metrics::Metrics;
use crate::projector::swap::ReplayError;
use crate::projector::{PgProjections, ProjectionError, ProjectionStore, SqliteProjections};

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
    #[error(transparent)]
    Replay(#[from] ReplayError),
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
    pub identity: Arc<crate::identity::JwksCache>,
    /// Where the service may connect on a tenant's behalf (`net::destination`): https to
    /// public addresses, loopback only with `--allow-loopback-urls` (development and tests),
    /// the operator's `--allow-destination` exceptions. The outbound clients (OAuth, JWKS,
    /// gateway) are built on it.
    pub destinations: Arc<crate::net::Policy>,
    pub vault: Arc<crate::crypto::Vault>,
    /// Connect flow, refresh and revocation settings (public URL, refresh buffer, retries).
    pub connections: crate::commands::connections::ConnectionSettings,
    pub oauth: Arc<crate::oauth::OAuthClient>,
    pub refresh_locks: Arc<crate::commands::connections::RefreshLocks>,
    /// The public keys this service trusts (its key dir's ring), for audit reads.
    pub trusted_keys: Arc<KeyRing>,
    /// The Merkle tree of the log as far as the last checkpoint tick read it.
    pub checkpoint_tree: Arc<tokio::sync::Mutex<crate::audit::merkle::CompactRange>>,
    /// The gateway: settings (upstream timeout, retries of idempotent calls), its
    /// upstream client, the compiled workspace tools.
    pub gateway: crate::gateway::Gateway,
    /// What the projector reports and readiness judges (lag, stall, a stuck event).
    pub projection_health: Arc<crate::projector::ProjectionHealth>,
    /// Idempotency-Key claims: lease and retention.
    pub idempotency: crate::commands::idempotency::IdempotencySettings,
}

/// The system clock; in a debug build, the test clock when a test names one
/// (`test_clock`, compiled out of release builds).
fn service_clock() -> Arc<dyn Clock> {
    #[cfg(debug_assertions)]
    if let Some(clock) = crate::test_clock::from_env() {
        return clock;
    }
    Arc::new(SystemClock)
}

impl AppState {
    pub async fn open(args: &StorageArgs) -> Result<AppState, AppError> {
        let signer = load_signer(args)?;
        let (log, _) = open_log(args, Access::Write).await?;
        let projections = open_projections(args).await?;
        let metrics = Metrics::new();
        let clock = service_clock();
        let ledger = Arc::new(Ledger::new(
            log.clone(),
            signer,
            clock.clone(),
            metrics.clone(),
        ));
        let identity = Arc::new(crate::identity::JwksCache::new());
        let destinations = Arc::new(crate::net::Policy::default());
        let vault = open_vault(args).await?;
        let connections = crate::commands::connections::ConnectionSettings::default();
        let oauth = Arc::new(
            crate::oauth::OAuthClient::new(connections.provider_timeout, &destinations)
                .map_err(|e| AppError::Io(format!("cannot build the OAuth client: {e}")))?,
        );
        Ok(AppState(Arc::new(AppStateInner {
            ledger,
            log,
            projections,
            metrics,
            clock,
            identity,
            destinations: destinations.clone(),
            vault,
            connections,
            oauth,
            refresh_locks: Arc::default(),
            trusted_keys: Arc::new(trusted_keys(args, &[])?),
            checkpoint_tree: Arc::default(),
            gateway: crate::gateway::Gateway::new(Default::default(), &destinations)
                .map_err(|e| AppError::Io(format!("cannot build the gateway client: {e}")))?,
            projection_health: Arc::new(crate::projector::ProjectionHealth::new(
                crate::projector::ReadinessBounds::default(),
                std::time::Instant::now(),
            )),
            idempotency: Default::default(),
        })))
    }
}

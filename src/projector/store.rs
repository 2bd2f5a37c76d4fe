//! Projection stores: one implementation per SQL backend (the SQL lives in
//! `projections/<backend>/`). Each batch runs in one transaction that first locks the
//! projection's offset row, so with several instances every event is applied exactly once
//! per projection, and a crash leaves offset and rows consistent.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use super::plan::{plan, Op};
use crate::domain::Event;
use crate::ledger::envelope::open_envelope;
use crate::ledger::{EventLog, LogError};

pub const PROJECTION: &str = "state";

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("projection database unavailable: {0}")]
    Database(String),
    #[error("projection database misconfigured: {0}")]
    Misconfigured(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("event at position {position} cannot be projected: {reason}")]
    Undecodable { position: u64, reason: String },
}

fn db(e: sqlx::Error) -> ProjectionError {
    ProjectionError::Database(e.to_string())
}

#[async_trait::async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Applies up to `limit` events after the stored offset; returns how many it applied.
    async fn catch_up(&self, log: &dyn EventLog, limit: usize) -> Result<u64, ProjectionError>;
    /// The position of the last applied event.
    async fn offset(&self) -> Result<u64, ProjectionError>;
    /// Empties every projection (they are rebuilt by replaying the log).
    async fn reset(&self) -> Result<(), ProjectionError>;
    fn describe(&self) -> String;

    /// The API key with this `sha256:` hash, in any workspace (authentication).
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, ProjectionError>;
    /// API keys of one workspace, oldest first.
    async fn api_keys(&self, workspace_id: &str) -> Result<Vec<ApiKeyRow>, ProjectionError>;
    /// One API key, only if it belongs to `workspace_id`.
    async fn api_key(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ApiKeyRow>, ProjectionError>;
    /// Whether an API key with this id exists in some *other* workspace (for auditing
    /// cross-workspace attempts; never shown to the caller).
    async fn api_key_elsewhere(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, ProjectionError>;
    async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, ProjectionError>;
    /// Auth configs of one workspace (deleted ones excluded), oldest first.
    async fn auth_configs(&self, workspace_id: &str)
        -> Result<Vec<AuthConfigRow>, ProjectionError>;
    /// One auth config of `workspace_id` (deleted ones too, with status `deleted`).
    async fn auth_config(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<AuthConfigRow>, ProjectionError>;
    async fn auth_config_versions(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Vec<AuthConfigVersionRow>, ProjectionError>;
    /// Whether an auth config with this id exists in some other workspace (audit only).
    async fn auth_config_elsewhere(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, ProjectionError>;
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuthConfigRow {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub auth_type: String,
    pub status: String,
    pub version: i64,
    /// JSON without secrets.
    pub settings: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuthConfigVersionRow {
    pub version: i64,
    pub kind: String,
    pub name: String,
    pub settings: String,
    pub changed: String,
    pub at: String,
    pub actor_id: String,
}

const AUTH_CONFIG_COLUMNS: &str =
    "id, name, provider, auth_type, status, version, settings, created_at, updated_at";

/// An API key as projected (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ApiKeyRow {
    pub workspace_id: String,
    pub id: String,
    pub name: String,
    pub role: String,
    pub key_prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct WorkspaceRow {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub idp_issuer: Option<String>,
    pub idp_audience: Option<String>,
    pub idp_jwks_url: Option<String>,
}

const API_KEY_COLUMNS: &str =
    "workspace_id, id, name, role, key_prefix, created_at, expires_at, revoked_at";

/// Decodes the events of a batch into operations, outside any transaction.
fn plan_batch(
    events: &[crate::ledger::RecordedEvent],
) -> Result<Vec<(u64, Vec<Op>)>, ProjectionError> {
    events
        .iter()
        .map(|rec| {
            let undecodable = |reason: String| ProjectionError::Undecodable {
                position: rec.position,
                reason,
            };
            let opened = open_envelope(&rec.envelope).map_err(|e| undecodable(e.to_string()))?;
            let event = Event::from_parts(&opened.body.kind, &opened.body.payload)
                .map_err(|e| undecodable(e.to_string()))?;
            Ok((rec.position, plan(rec.position, &opened.body, &event)))
        })
        .collect()
}

const RESET_SQL: &str = "DELETE FROM audit_events; DELETE FROM api_keys; DELETE FROM workspaces;
     DELETE FROM auth_configs; DELETE FROM auth_config_versions;
     UPDATE projection_offsets SET position = 0;";

/// The same statements serve both backends (`$n` placeholders work in SQLite too); only
/// the pool type, the way a batch takes its lock and the migrations differ.
macro_rules! sql_projection_store {
    ($store:ident, $pool:ty, $lock_sql:expr) => {
        impl $store {
            /// Whether `table` has a row with this id in a workspace other than `workspace_id`.
            async fn exists_elsewhere(&self, table: &'static str, workspace_id: &str, id: &str) -> Result<bool, ProjectionError> {
                let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE workspace_id <> $1 AND id = $2"))
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(n > 0)
            }

            async fn exec_op<'c>(
                tx: &mut sqlx::Transaction<'c, <$pool as PoolDb>::Db>,
                op: Op,
            ) -> Result<(), sqlx::Error> {
                match op {
                    Op::Audit(a) => {
                        sqlx::query(
                            "INSERT INTO audit_events (position, event_id, workspace_id, aggregate_type,
                             aggregate_id, aggregate_version, kind, actor_type, actor_id, occurred_at, key_id)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        )
                        .bind(a.position)
                        .bind(a.event_id)
                        .bind(a.workspace_id)
                        .bind(a.aggregate_type)
                        .bind(a.aggregate_id)
                        .bind(a.aggregate_version)
                        .bind(a.kind)
                        .bind(a.actor_type)
                        .bind(a.actor_id)
                        .bind(a.occurred_at)
                        .bind(a.key_id)
                        .execute(&mut **tx)
                        .await?;
                    }
                    Op::CreateWorkspace { id, name, at, version } => {
                        sqlx::query("INSERT INTO workspaces (id, name, created_at, version) VALUES ($1, $2, $3, $4)")
                            .bind(id)
                            .bind(name)
                            .bind(at)
                            .bind(version)
                            .execute(&mut **tx)
                            .await?;
                    }
                    Op::ConfigureIdentityProvider { id, issuer, audience, jwks_url, version } => {
                        let done = sqlx::query(
                            "UPDATE workspaces SET idp_issuer = $1, idp_audience = $2, idp_jwks_url = $3, version = $4
                             WHERE id = $5 AND version = $4 - 1",
                        )
                        .bind(issuer)
                        .bind(audience)
                        .bind(jwks_url)
                        .bind(version)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                        if done.rows_affected() != 1 {
                            return Err(sqlx::Error::Protocol("workspace change out of order".into()));
                        }
                    }
                    Op::AuthConfigVersion {
                        workspace_id, id, version, kind, name, provider, auth_type, status, settings, changed, at, actor_id,
                    } => {
                        if version == 1 {
                            sqlx::query(
                                "INSERT INTO auth_configs (workspace_id, id, name, provider, auth_type, status, version,
                                 settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8)",
                            )
                            .bind(&workspace_id)
                            .bind(&id)
                            .bind(name.unwrap_or_default())
                            .bind(provider.unwrap_or_default())
                            .bind(auth_type.unwrap_or_default())
                            .bind(status.unwrap_or_default())
                            .bind(settings.unwrap_or_default())
                            .bind(&at)
                            .execute(&mut **tx)
                            .await?;
                        } else {
                            let done = sqlx::query(
                                "UPDATE auth_configs SET name = COALESCE($1, name), status = COALESCE($2, status),
                                 settings = COALESCE($3, settings), version = $4, updated_at = $5
                                 WHERE workspace_id = $6 AND id = $7 AND version = $4 - 1",
                            )
                            .bind(name)
                            .bind(status)
                            .bind(settings)
                            .bind(version)
                            .bind(&at)
                            .bind(&workspace_id)
                            .bind(&id)
                            .execute(&mut **tx)
                            .await?;
                            if done.rows_affected() != 1 {
                                return Err(sqlx::Error::Protocol("auth config change out of order".into()));
                            }
                        }
                        sqlx::query(
                            "INSERT INTO auth_config_versions (workspace_id, id, version, kind, name, settings, changed, at, actor_id)
                             SELECT workspace_id, id, version, $1, name, settings, $2, $3, $4 FROM auth_configs
                             WHERE workspace_id = $5 AND id = $6",
                        )
                        .bind(kind)
                        .bind(changed)
                        .bind(&at)
                        .bind(actor_id)
                        .bind(&workspace_id)
                        .bind(&id)
                        .execute(&mut **tx)
                        .await?;
                    }
                    Op::CreateApiKey { workspace_id, id, name, role, key_prefix, key_hash, at, expires_at, version } => {
                        sqlx::query(
                            "INSERT INTO api_keys (workspace_id, id, name, role, key_prefix, key_hash,
                             created_at, expires_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(name)
                        .bind(role)
                        .bind(key_prefix)
                        .bind(key_hash)
                        .bind(at)
                        .bind(expires_at)
                        .bind(version)
                        .execute(&mut **tx)
                        .await?;
                    }
                    Op::RevokeApiKey { workspace_id, id, at, version } => {
                        // Guarded by version so an event can never be applied twice.
                        let done = sqlx::query(
                            "UPDATE api_keys SET revoked_at = $1, version = $2
                             WHERE workspace_id = $3 AND id = $4 AND version = $2 - 1",
                        )
                        .bind(at)
                        .bind(version)
                        .bind(workspace_id)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                        if done.rows_affected() != 1 {
                            return Err(sqlx::Error::Protocol("api key revocation out of order".into()));
                        }
                    }
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl ProjectionStore for $store {
            async fn catch_up(&self, log: &dyn EventLog, limit: usize) -> Result<u64, ProjectionError> {
                let mut tx = self.begin().await.map_err(db)?;
                let offset: i64 = sqlx::query_scalar($lock_sql)
                    .bind(PROJECTION)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                let offset = u64::try_from(offset).unwrap_or(0);
                let events = log.read_from(offset + 1, limit).await?;
                if events.is_empty() {
                    return Ok(0);
                }
                let planned = plan_batch(&events)?;
                let mut last = offset;
                for (position, ops) in planned {
                    for op in ops {
                        Self::exec_op(&mut tx, op).await.map_err(|e| ProjectionError::Undecodable {
                            position,
                            reason: e.to_string(),
                        })?;
                    }
                    last = position;
                }
                sqlx::query("UPDATE projection_offsets SET position = $1 WHERE name = $2")
                    .bind(i64::try_from(last).unwrap_or(i64::MAX))
                    .bind(PROJECTION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(events.len() as u64)
            }

            async fn offset(&self) -> Result<u64, ProjectionError> {
                let p: i64 = sqlx::query_scalar("SELECT position FROM projection_offsets WHERE name = $1")
                    .bind(PROJECTION)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(u64::try_from(p).unwrap_or(0))
            }

            async fn reset(&self) -> Result<(), ProjectionError> {
                sqlx::raw_sql(RESET_SQL).execute(&self.pool).await.map_err(db)?;
                Ok(())
            }

            fn describe(&self) -> String {
                self.description.clone()
            }

            async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"))
                    .bind(key_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn api_keys(&self, workspace_id: &str) -> Result<Vec<ApiKeyRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn api_key(&self, workspace_id: &str, id: &str) -> Result<Option<ApiKeyRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 AND id = $2"))
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn api_key_elsewhere(&self, workspace_id: &str, id: &str) -> Result<bool, ProjectionError> {
                self.exists_elsewhere("api_keys", workspace_id, id).await
            }

            async fn auth_configs(&self, workspace_id: &str) -> Result<Vec<AuthConfigRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {AUTH_CONFIG_COLUMNS} FROM auth_configs WHERE workspace_id = $1 AND status <> 'deleted'
                     ORDER BY created_at, id"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn auth_config(&self, workspace_id: &str, id: &str) -> Result<Option<AuthConfigRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {AUTH_CONFIG_COLUMNS} FROM auth_configs WHERE workspace_id = $1 AND id = $2"))
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn auth_config_versions(
                &self,
                workspace_id: &str,
                id: &str,
            ) -> Result<Vec<AuthConfigVersionRow>, ProjectionError> {
                sqlx::query_as(
                    "SELECT version, kind, name, settings, changed, at, actor_id FROM auth_config_versions
                     WHERE workspace_id = $1 AND id = $2 ORDER BY version",
                )
                .bind(workspace_id)
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn auth_config_elsewhere(&self, workspace_id: &str, id: &str) -> Result<bool, ProjectionError> {
                self.exists_elsewhere("auth_configs", workspace_id, id).await
            }

            async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, ProjectionError> {
                sqlx::query_as("SELECT id, name, created_at, idp_issuer, idp_audience, idp_jwks_url FROM workspaces WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }
        }
    };
}

/// Maps a pool type to its database (keeps the macro readable).
pub trait PoolDb {
    type Db: sqlx::Database;
}
impl PoolDb for SqlitePool {
    type Db = sqlx::Sqlite;
}
impl PoolDb for PgPool {
    type Db = sqlx::Postgres;
}

pub struct SqliteProjections {
    pool: SqlitePool,
    description: String,
}

impl SqliteProjections {
    pub async fn open(path: &std::path::Path) -> Result<Self, ProjectionError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| ProjectionError::Misconfigured(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!(
                    "cannot open projections {}: {e}",
                    path.display()
                ))
            })?;
        sqlx::migrate!("./projections/sqlite")
            .run(&pool)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("projection migrations failed: {e}"))
            })?;
        Ok(SqliteProjections {
            pool,
            description: format!("SQLite projections {}", path.display()),
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front: the batch is serialised with any other.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

sql_projection_store!(
    SqliteProjections,
    SqlitePool,
    "SELECT position FROM projection_offsets WHERE name = $1"
);

pub struct PgProjections {
    pool: PgPool,
    description: String,
}

impl PgProjections {
    pub async fn open(url: &str) -> Result<Self, ProjectionError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("cannot connect to PostgreSQL: {e}"))
            })?;
        sqlx::migrate!("./projections/postgres")
            .run(&pool)
            .await
            .map_err(|e| {
                ProjectionError::Misconfigured(format!("projection migrations failed: {e}"))
            })?;
        Ok(PgProjections {
            pool,
            description: "PostgreSQL projections".into(),
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

// FOR UPDATE: a second instance waits here, then sees the advanced offset.
sql_projection_store!(
    PgProjections,
    PgPool,
    "SELECT position FROM projection_offsets WHERE name = $1 FOR UPDATE"
);

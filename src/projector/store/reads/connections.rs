//! Connections as projected: status, scopes and token metadata, never a credential.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};
use crate::projector::cache::Family;

/// Statuses of a connection that still holds (or awaits) a grant.
pub(super) const LIVE_CONNECTION: &str = "('initiated', 'active', 'needs_reconsent')";

/// A connection as projected: never a token or credential, only their metadata.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ConnectionRow {
    pub workspace_id: String,
    pub id: String,
    pub auth_config_id: String,
    pub user_id: String,
    pub status: String,
    /// Granted scopes, JSON array.
    pub scopes: String,
    /// Requested scopes, JSON array (empty for connections created from credentials).
    pub requested_scopes: String,
    pub redirect_url: Option<String>,
    /// When the access token expires (RFC 3339), if known.
    pub expires_at: Option<String>,
    pub has_refresh_token: bool,
    /// Why the connection is in its status (last error, expiry or revocation reason).
    pub status_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_refreshed_at: Option<String>,
    pub last_used_at: Option<String>,
    pub version: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub status: Option<String>,
    /// exclusive cursor: ids sort in creation order (UUIDv7)
    pub after_id: Option<String>,
    /// At most this many rows (0 or less: none).
    pub limit: i64,
}

const CONNECTION_COLUMNS: &str = "workspace_id, id, auth_config_id, user_id, status, scopes,
     requested_scopes, redirect_url, expires_at, has_refresh_token, status_reason, created_at,
     updated_at, last_refreshed_at, last_used_at, version";

#[async_trait::async_trait]
pub trait ConnectionReads: Send + Sync {
    /// Connections of one workspace (deleted ones excluded), in id (creation) order, after
    /// `filter.after_id`, at most `filter.limit`.
    async fn connections(
        &self,
        workspace_id: &str,
        filter: &ConnectionFilter,
    ) -> Result<Vec<ConnectionRow>, ProjectionError>;
    /// One connection of `workspace_id` (deleted ones too, with status `deleted`).
    async fn connection(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ConnectionRow>, ProjectionError>;
    /// Whether a connection with this id exists in some other workspace (audit only).
    async fn connection_elsewhere(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, ProjectionError>;
    /// The connection waiting for the OAuth callback with this `sha256:` state hash, in any
    /// workspace; only while its status is `initiated`.
    async fn connection_by_state_hash(
        &self,
        state_hash: &str,
    ) -> Result<Option<ConnectionRow>, ProjectionError>;
    /// Active or needs-reconsent connections holding a refresh token whose access token
    /// expires at or before `expiring_before_unix` (seconds), soonest first, any workspace.
    async fn connections_due_for_refresh(
        &self,
        expiring_before_unix: i64,
        limit: i64,
    ) -> Result<Vec<ConnectionRow>, ProjectionError>;
    /// Live connections (initiated, active, needs_reconsent) of one auth config, by id.
    async fn live_connections_of(
        &self,
        workspace_id: &str,
        auth_config_id: &str,
    ) -> Result<Vec<ConnectionRow>, ProjectionError>;
}

macro_rules! connections_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl ConnectionReads for $store {
            async fn connections(
                &self,
                workspace_id: &str,
                filter: &ConnectionFilter,
            ) -> Result<Vec<ConnectionRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND status <> 'deleted'
                     AND ($2 IS NULL OR user_id = $2) AND ($3 IS NULL OR auth_config_id = $3)
                     AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR id > $5)
                     ORDER BY id LIMIT $6"
                ))
                .bind(workspace_id)
                .bind(filter.user_id.as_deref())
                .bind(filter.auth_config_id.as_deref())
                .bind(filter.status.as_deref())
                .bind(filter.after_id.as_deref())
                .bind(filter.limit.max(0))
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn connection(&self, workspace_id: &str, id: &str) -> Result<Option<ConnectionRow>, ProjectionError> {
                let read = self.connection_row(workspace_id, id);
                self.cached(Family::Connections, format!("{workspace_id}/{id}"), read).await
            }

            async fn connection_elsewhere(&self, workspace_id: &str, id: &str) -> Result<bool, ProjectionError> {
                self.exists_elsewhere("connections", workspace_id, id).await
            }

            async fn connection_by_state_hash(&self, state_hash: &str) -> Result<Option<ConnectionRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE state_hash = $1 AND status = 'initiated'
                     ORDER BY workspace_id, id LIMIT 1"
                ))
                .bind(state_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
            }

            async fn connections_due_for_refresh(
                &self,
                expiring_before_unix: i64,
                limit: i64,
            ) -> Result<Vec<ConnectionRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections
                     WHERE expires_at_unix <= $1 AND status IN ('active', 'needs_reconsent') AND has_refresh_token
                     ORDER BY expires_at_unix, workspace_id, id LIMIT $2"
                ))
                .bind(expiring_before_unix)
                .bind(limit.max(0))
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn live_connections_of(
                &self,
                workspace_id: &str,
                auth_config_id: &str,
            ) -> Result<Vec<ConnectionRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND auth_config_id = $2
                     AND status IN {LIVE_CONNECTION} ORDER BY id"
                ))
                .bind(workspace_id)
                .bind(auth_config_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }
        }
    };
}

connections_reads!(SqliteProjections);
connections_reads!(PgProjections);

/// One connection by workspace and id: built once, read on every create and cache miss.
static CONNECTION_BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND id = $2")
});

impl SqliteProjections {
    /// On the caller's thread (a primary-key read takes less than a hand-off to the pool's
    /// connection thread and back; every connection create reads its row back).
    async fn connection_row(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ConnectionRow>, ProjectionError> {
        use rusqlite::OptionalExtension as _;
        self.point_readers
            .with(|c| {
                c.prepare_cached(&CONNECTION_BY_ID)?
                    .query_row([workspace_id, id], |row| {
                        Ok(ConnectionRow {
                            workspace_id: row.get(0)?,
                            id: row.get(1)?,
                            auth_config_id: row.get(2)?,
                            user_id: row.get(3)?,
                            status: row.get(4)?,
                            scopes: row.get(5)?,
                            requested_scopes: row.get(6)?,
                            redirect_url: row.get(7)?,
                            expires_at: row.get(8)?,
                            has_refresh_token: row.get(9)?,
                            status_reason: row.get(10)?,
                            created_at: row.get(11)?,
                            updated_at: row.get(12)?,
                            last_refreshed_at: row.get(13)?,
                            last_used_at: row.get(14)?,
                            version: row.get(15)?,
                        })
                    })
                    .optional()
            })
            .map_err(|e| ProjectionError::Database(format!("cannot read connection {id}: {e}")))
    }
}

impl PgProjections {
    async fn connection_row(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ConnectionRow>, ProjectionError> {
        sqlx::query_as(CONNECTION_BY_ID.as_str())
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }
}

//! Dynamic database credentials as projected: which users are live, where, until when;
//! never a password.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};

/// A dynamic credential as projected.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DynamicCredentialRow {
    pub workspace_id: String,
    pub id: String,
    pub connection_id: String,
    pub username: String,
    pub expires_at_unix: i64,
    /// live, dropping, expired or revoked.
    pub status: String,
    pub version: i64,
}

const COLUMNS: &str = "workspace_id, id, connection_id, username, expires_at_unix, status, version";

#[async_trait::async_trait]
pub trait DynamicCredentialReads: Send + Sync {
    /// Users not yet dropped (live, or a drop claimed) whose expiry is at or before
    /// `now_unix`, soonest first, any workspace, at most `limit`.
    async fn dynamic_credentials_due(
        &self,
        now_unix: i64,
        limit: i64,
    ) -> Result<Vec<DynamicCredentialRow>, ProjectionError>;
    /// The connection's users not yet dropped.
    async fn live_dynamic_credentials_of(
        &self,
        workspace_id: &str,
        connection_id: &str,
    ) -> Result<Vec<DynamicCredentialRow>, ProjectionError>;
}

macro_rules! dynamic_credential_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl DynamicCredentialReads for $store {
            async fn dynamic_credentials_due(
                &self,
                now_unix: i64,
                limit: i64,
            ) -> Result<Vec<DynamicCredentialRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM dynamic_credentials
                     WHERE status IN ('live', 'dropping') AND expires_at_unix <= $1
                     ORDER BY expires_at_unix, workspace_id, id LIMIT $2"
                ))
                .bind(now_unix)
                .bind(limit.max(0))
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn live_dynamic_credentials_of(
                &self,
                workspace_id: &str,
                connection_id: &str,
            ) -> Result<Vec<DynamicCredentialRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM dynamic_credentials
                     WHERE workspace_id = $1 AND connection_id = $2 AND status IN ('live', 'dropping')
                     ORDER BY id"
                ))
                .bind(workspace_id)
                .bind(connection_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }
        }
    };
}

dynamic_credential_reads!(SqliteProjections);
dynamic_credential_reads!(PgProjections);

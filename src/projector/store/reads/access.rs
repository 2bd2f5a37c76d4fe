//! Workspaces and their API keys, as authentication reads them (cached).

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};
use crate::projector::cache::Family;

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

/// A step-up approval as projected (`status` pending/approved/denied/consumed; expiry is

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

#[async_trait::async_trait]
pub trait AccessReads: Send + Sync {
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
}

macro_rules! access_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl AccessReads for $store {
            async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, ProjectionError> {
                let read = async {
                    sqlx::query_as(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"))
                        .bind(key_hash)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db)
                };
                self.cached(Family::ApiKeys, key_hash.to_string(), read).await
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

            async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, ProjectionError> {
                let read = async {
                    sqlx::query_as("SELECT id, name, created_at, idp_issuer, idp_audience, idp_jwks_url FROM workspaces WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db)
                };
                self.cached(Family::Workspaces, id.to_string(), read).await
            }
        }
    };
}

access_reads!(SqliteProjections);
access_reads!(PgProjections);

//! Auth configs, with their live connection counts, and their versions.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};
use super::connections::LIVE_CONNECTION;

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
    /// Live connections (initiated, active, needs_reconsent) made from this config.
    pub connections: i64,
    /// Latest `last_used_at` over its connections.
    pub last_used_at: Option<String>,
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

/// `SELECT ... FROM auth_configs a`, with the connection columns; add `WHERE a....`.
/// (`last_used_at` is the text maximum: exact to the second, the fraction may misorder.)
fn auth_config_select() -> String {
    format!(
        "SELECT a.id, a.name, a.provider, a.auth_type, a.status, a.version, a.settings,
         a.created_at, a.updated_at,
         (SELECT COUNT(*) FROM connections c WHERE c.workspace_id = a.workspace_id
          AND c.auth_config_id = a.id AND c.status IN {LIVE_CONNECTION}) AS connections,
         (SELECT MAX(c.last_used_at) FROM connections c WHERE c.workspace_id = a.workspace_id
          AND c.auth_config_id = a.id) AS last_used_at
         FROM auth_configs a"
    )
}

#[async_trait::async_trait]
pub trait AuthConfigReads: Send + Sync {
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

macro_rules! auth_configs_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl AuthConfigReads for $store {
            async fn auth_configs(&self, workspace_id: &str) -> Result<Vec<AuthConfigRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "{} WHERE a.workspace_id = $1 AND a.status <> 'deleted' ORDER BY a.created_at, a.id",
                    auth_config_select()
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn auth_config(&self, workspace_id: &str, id: &str) -> Result<Option<AuthConfigRow>, ProjectionError> {
                sqlx::query_as(&format!("{} WHERE a.workspace_id = $1 AND a.id = $2", auth_config_select()))
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
        }
    };
}

auth_configs_reads!(SqliteProjections);
auth_configs_reads!(PgProjections);

//! Gateways (and the keys bound to them), step-up approvals and workspace tools.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};
use crate::projector::cache::Family;

/// the reader's to compare).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ApprovalRow {
    pub id: String,
    pub user_id: String,
    pub connection_id: String,
    pub tool: String,
    pub argument_fingerprint: String,
    pub status: String,
    pub expires_at: String,
    pub tool_call_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A gateway as projected: servers and bound keys as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct GatewayRow {
    pub id: String,
    pub name: String,
    pub servers: String,
    pub agent_key_ids: String,
    pub status: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

const APPROVAL_COLUMNS: &str = "id, user_id, connection_id, tool, argument_fingerprint, status, \
                                expires_at, tool_call_id, created_at, updated_at";

const GATEWAY_COLUMNS: &str =
    "id, name, servers, agent_key_ids, status, version, created_at, updated_at";

#[async_trait::async_trait]
pub trait AgentReads: Send + Sync {
    /// One gateway of the workspace (deleted ones too, with status `deleted`).
    async fn gateway(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<GatewayRow>, ProjectionError>;
    /// The workspace's gateways (not deleted), by id.
    async fn gateways(&self, workspace_id: &str) -> Result<Vec<GatewayRow>, ProjectionError>;
    /// Every gateway an API key has been bound to: deleted ones and released bindings (the
    /// key was left out of a later definition; status `released`) included, since both
    /// bind the key to nothing.
    async fn gateways_of_key(
        &self,
        workspace_id: &str,
        api_key_id: &str,
    ) -> Result<Vec<GatewayRow>, ProjectionError>;
    /// One end user's approvals, newest first (at most `limit`).
    async fn approvals_of_user(
        &self,
        workspace_id: &str,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<ApprovalRow>, ProjectionError>;
    /// The workspace's approvals, pending ones first, then newest first (at most `limit`).
    async fn approvals(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> Result<Vec<ApprovalRow>, ProjectionError>;
    /// A tool the workspace defined (its definition as JSON), if any.
    async fn workspace_tool(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<String>, ProjectionError>;
    /// The workspace's own tools: (name, definition JSON, version), by name.
    async fn workspace_tools(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<(String, String, i64)>, ProjectionError>;
}

macro_rules! agents_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl AgentReads for $store {
            async fn gateway(&self, workspace_id: &str, id: &str) -> Result<Option<GatewayRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {GATEWAY_COLUMNS} FROM gateways WHERE workspace_id = $1 AND id = $2"))
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn gateways(&self, workspace_id: &str) -> Result<Vec<GatewayRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {GATEWAY_COLUMNS} FROM gateways WHERE workspace_id = $1 AND status <> 'deleted' ORDER BY id"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn gateways_of_key(
                &self,
                workspace_id: &str,
                api_key_id: &str,
            ) -> Result<Vec<GatewayRow>, ProjectionError> {
                let read = async {
                    // A released binding answers as its gateway with status `released`.
                    sqlx::query_as(
                        "SELECT g.id, g.name, g.servers, g.agent_key_ids,
                                CASE WHEN k.released THEN 'released' ELSE g.status END AS status,
                                g.version, g.created_at, g.updated_at
                         FROM gateway_keys k JOIN gateways g
                           ON g.workspace_id = k.workspace_id AND g.id = k.gateway_id
                         WHERE k.workspace_id = $1 AND k.api_key_id = $2
                         ORDER BY g.id",
                    )
                    .bind(workspace_id)
                    .bind(api_key_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)
                };
                self.cached(Family::Gateways, format!("{workspace_id}/{api_key_id}"), read).await
            }

            async fn approvals_of_user(
                &self,
                workspace_id: &str,
                user_id: &str,
                limit: i64,
            ) -> Result<Vec<ApprovalRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals
                     WHERE workspace_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3"
                ))
                .bind(workspace_id)
                .bind(user_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn approvals(
                &self,
                workspace_id: &str,
                limit: i64,
            ) -> Result<Vec<ApprovalRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE workspace_id = $1
                     ORDER BY CASE WHEN status = 'pending' THEN 0 ELSE 1 END, id DESC LIMIT $2"
                ))
                .bind(workspace_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn workspace_tool(
                &self,
                workspace_id: &str,
                name: &str,
            ) -> Result<Option<String>, ProjectionError> {
                let read = async {
                    sqlx::query_scalar(
                        "SELECT definition FROM workspace_tools WHERE workspace_id = $1 AND name = $2",
                    )
                    .bind(workspace_id)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
                };
                self.cached(Family::WorkspaceTools, format!("{workspace_id}/{name}"), read).await
            }

            async fn workspace_tools(
                &self,
                workspace_id: &str,
            ) -> Result<Vec<(String, String, i64)>, ProjectionError> {
                sqlx::query_as(
                    "SELECT name, definition, version FROM workspace_tools WHERE workspace_id = $1
                     ORDER BY name",
                )
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }
        }
    };
}

agents_reads!(SqliteProjections);
agents_reads!(PgProjections);

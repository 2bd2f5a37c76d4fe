//! Webhook endpoints as projected (`webhooks`), and their delivery state beside them:
//! a cursor per endpoint (`webhook_cursors`, claimed by a lease through a conditional
//! update) and every attempt (`webhook_deliveries`). The delivery state is not a
//! projection: the log does not hold it and `replay` does not reset it.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};

/// An endpoint as projected (never its secret: only the fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct WebhookRow {
    pub workspace_id: String,
    pub id: String,
    pub url: String,
    /// JSON array of kinds and prefixes.
    pub events: String,
    pub enabled: bool,
    /// `active` or `deleted`.
    pub status: String,
    pub disabled_reason: Option<String>,
    pub secret_fingerprint: String,
    pub created_position: i64,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

/// An endpoint's delivery cursor.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CursorRow {
    /// The last position delivered or passed over.
    pub position: i64,
    /// Failed attempts at the next event.
    pub attempt: i64,
    /// Unix seconds of the first failure of the next event.
    pub failing_since: Option<i64>,
    /// Unix seconds before which the next event is not tried again.
    pub next_attempt_at: i64,
    pub generation: i64,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DeliveryRow {
    pub event_id: String,
    pub position: i64,
    pub kind: String,
    pub attempt: i64,
    /// `delivered` or `failed`.
    pub status: String,
    pub response_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub attempted_at: String,
}

/// Who holds an endpoint's cursor, and until when (unix milliseconds of the service clock).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub now_ms: i64,
    pub until_ms: i64,
}

/// A failed attempt's effect on the cursor.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempt: i64,
    pub failing_since: i64,
    pub next_attempt_at: i64,
}

const WEBHOOK_COLUMNS: &str = "workspace_id, id, url, events, enabled, status, disabled_reason, \
    secret_fingerprint, created_position, created_at, updated_at, version";
const CURSOR_COLUMNS: &str = "position, attempt, failing_since, next_attempt_at, generation";

#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// The workspace's endpoints (not deleted), oldest first.
    async fn webhooks(&self, workspace_id: &str) -> Result<Vec<WebhookRow>, ProjectionError>;
    /// One endpoint (deleted ones too), only if it belongs to `workspace_id`.
    async fn webhook(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<WebhookRow>, ProjectionError>;
    /// Whether an endpoint with this id exists in another workspace (audit only).
    async fn webhook_elsewhere(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, ProjectionError>;
    /// Every workspace's endpoints that are on.
    async fn deliverable_webhooks(&self) -> Result<Vec<WebhookRow>, ProjectionError>;
    /// The endpoint's cursor, made at `position` if it has none.
    async fn ensure_cursor(
        &self,
        workspace_id: &str,
        id: &str,
        position: i64,
    ) -> Result<(), ProjectionError>;
    async fn cursor(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<CursorRow>, ProjectionError>;
    /// Takes (or extends) the endpoint's lease: the cursor if this owner holds it now.
    async fn claim_cursor(
        &self,
        workspace_id: &str,
        id: &str,
        lease: Lease<'_>,
    ) -> Result<Option<CursorRow>, ProjectionError>;
    /// Moves the cursor to `position` (delivered or passed over) if `owner` still holds it
    /// at `generation`; false if not (another instance took over, or it was rewound).
    async fn advance_cursor(
        &self,
        workspace_id: &str,
        id: &str,
        owner: &str,
        generation: i64,
        position: i64,
    ) -> Result<bool, ProjectionError>;
    /// Records a failed attempt at the next event, under the same conditions.
    async fn retry_later(
        &self,
        workspace_id: &str,
        id: &str,
        owner: &str,
        generation: i64,
        retry: Retry,
    ) -> Result<bool, ProjectionError>;
    /// Lets the lease go.
    async fn release_cursor(
        &self,
        workspace_id: &str,
        id: &str,
        owner: &str,
    ) -> Result<(), ProjectionError>;
    /// Sends again from after `position`: no failures, a new generation.
    async fn rewind_cursor(
        &self,
        workspace_id: &str,
        id: &str,
        position: i64,
    ) -> Result<(), ProjectionError>;
    /// Forgets the failures at the next event (turned on again), in a new generation.
    async fn clear_failures(&self, workspace_id: &str, id: &str) -> Result<(), ProjectionError>;
    async fn record_delivery(
        &self,
        workspace_id: &str,
        id: &str,
        delivery: &DeliveryRow,
    ) -> Result<(), ProjectionError>;
    /// The endpoint's attempts, newest first.
    async fn deliveries(
        &self,
        workspace_id: &str,
        id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, ProjectionError>;
}

macro_rules! webhook_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl WebhookStore for $store {
            async fn webhooks(&self, workspace_id: &str) -> Result<Vec<WebhookRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE workspace_id = $1 AND status <> 'deleted'
                     ORDER BY created_position"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn webhook(&self, workspace_id: &str, id: &str) -> Result<Option<WebhookRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE workspace_id = $1 AND id = $2"))
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn webhook_elsewhere(&self, workspace_id: &str, id: &str) -> Result<bool, ProjectionError> {
                self.exists_elsewhere("webhooks", workspace_id, id).await
            }

            async fn deliverable_webhooks(&self) -> Result<Vec<WebhookRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE status = 'active' AND enabled
                     ORDER BY created_position"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn ensure_cursor(&self, workspace_id: &str, id: &str, position: i64) -> Result<(), ProjectionError> {
                sqlx::query(
                    "INSERT INTO webhook_cursors (workspace_id, webhook_id, position) VALUES ($1, $2, $3)
                     ON CONFLICT (workspace_id, webhook_id) DO NOTHING",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(position)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn cursor(&self, workspace_id: &str, id: &str) -> Result<Option<CursorRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {CURSOR_COLUMNS} FROM webhook_cursors WHERE workspace_id = $1 AND webhook_id = $2"
                ))
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
            }

            async fn claim_cursor(&self, workspace_id: &str, id: &str, lease: Lease<'_>) -> Result<Option<CursorRow>, ProjectionError> {
                let done = sqlx::query(
                    "UPDATE webhook_cursors SET lease_owner = $3, lease_until = $5
                     WHERE workspace_id = $1 AND webhook_id = $2
                       AND (lease_owner = $3 OR lease_owner IS NULL OR lease_until < $4)",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(lease.owner)
                .bind(lease.now_ms)
                .bind(lease.until_ms)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                self.cursor(workspace_id, id).await
            }

            async fn advance_cursor(&self, workspace_id: &str, id: &str, owner: &str, generation: i64, position: i64) -> Result<bool, ProjectionError> {
                let done = sqlx::query(
                    "UPDATE webhook_cursors SET position = $5, attempt = 0, failing_since = NULL, next_attempt_at = 0
                     WHERE workspace_id = $1 AND webhook_id = $2 AND lease_owner = $3 AND generation = $4
                       AND position < $5",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(owner)
                .bind(generation)
                .bind(position)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            async fn retry_later(&self, workspace_id: &str, id: &str, owner: &str, generation: i64, retry: Retry) -> Result<bool, ProjectionError> {
                let done = sqlx::query(
                    "UPDATE webhook_cursors SET attempt = $5, failing_since = $6, next_attempt_at = $7
                     WHERE workspace_id = $1 AND webhook_id = $2 AND lease_owner = $3 AND generation = $4",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(owner)
                .bind(generation)
                .bind(retry.attempt)
                .bind(retry.failing_since)
                .bind(retry.next_attempt_at)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_cursor(&self, workspace_id: &str, id: &str, owner: &str) -> Result<(), ProjectionError> {
                sqlx::query(
                    "UPDATE webhook_cursors SET lease_owner = NULL, lease_until = 0
                     WHERE workspace_id = $1 AND webhook_id = $2 AND lease_owner = $3",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn rewind_cursor(&self, workspace_id: &str, id: &str, position: i64) -> Result<(), ProjectionError> {
                sqlx::query(
                    "INSERT INTO webhook_cursors (workspace_id, webhook_id, position) VALUES ($1, $2, $3)
                     ON CONFLICT (workspace_id, webhook_id) DO UPDATE SET position = excluded.position,
                         attempt = 0, failing_since = NULL, next_attempt_at = 0,
                         generation = webhook_cursors.generation + 1",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(position)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn clear_failures(&self, workspace_id: &str, id: &str) -> Result<(), ProjectionError> {
                sqlx::query(
                    "UPDATE webhook_cursors SET attempt = 0, failing_since = NULL, next_attempt_at = 0,
                         generation = generation + 1
                     WHERE workspace_id = $1 AND webhook_id = $2",
                )
                .bind(workspace_id)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn record_delivery(&self, workspace_id: &str, id: &str, d: &DeliveryRow) -> Result<(), ProjectionError> {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (workspace_id, webhook_id, event_id, position, kind,
                         attempt, status, response_code, latency_ms, error, attempted_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(&d.event_id)
                .bind(d.position)
                .bind(&d.kind)
                .bind(d.attempt)
                .bind(&d.status)
                .bind(d.response_code)
                .bind(d.latency_ms)
                .bind(&d.error)
                .bind(&d.attempted_at)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn deliveries(&self, workspace_id: &str, id: &str, limit: i64) -> Result<Vec<DeliveryRow>, ProjectionError> {
                sqlx::query_as(
                    "SELECT event_id, position, kind, attempt, status, response_code, latency_ms, error,
                            attempted_at
                     FROM webhook_deliveries WHERE workspace_id = $1 AND webhook_id = $2
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }
        }
    };
}

webhook_store!(SqliteProjections);
webhook_store!(PgProjections);

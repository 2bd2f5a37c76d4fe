//! The SIEM feed's delivery state beside the projections (`siem_cursors`, read and moved by
//! `crate::siem`): one cursor per sink, claimed by a lease through a conditional update,
//! and the audit view of every workspace in log order (what the feed sends). The cursor is
//! not a projection: the log does not hold it and `replay` does not reset it.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};
use super::audit::{AuditEventRow, AUDIT_COLUMNS};
use super::webhooks::Lease;

/// A sink's cursor.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SiemCursorRow {
    /// The last position sent (or passed over as not wanted).
    pub position: i64,
    /// Failed attempts in a row (0 once a batch is sent).
    pub failures: i64,
    /// Unix seconds of the first of them.
    pub failing_since: Option<i64>,
    /// The last failure as an operator may read it (never a secret: no URL credentials,
    /// no message content).
    pub last_error: Option<String>,
}

#[async_trait::async_trait]
pub trait SiemStore: Send + Sync {
    /// The sink's cursor, made at `position` if it has none.
    async fn ensure_siem_cursor(&self, sink: &str, position: i64) -> Result<(), ProjectionError>;
    async fn siem_cursor(&self, sink: &str) -> Result<Option<SiemCursorRow>, ProjectionError>;
    /// Takes (or extends) the sink's lease: its cursor if this owner holds it now.
    async fn claim_siem_cursor(
        &self,
        sink: &str,
        lease: Lease<'_>,
    ) -> Result<Option<SiemCursorRow>, ProjectionError>;
    /// Moves the cursor forward to `position` and forgets the failures, if `owner` still
    /// holds it; false if not (the lease ran out and another instance took it).
    async fn advance_siem_cursor(
        &self,
        sink: &str,
        owner: &str,
        position: i64,
    ) -> Result<bool, ProjectionError>;
    /// Counts a failed attempt (the cursor stays), if `owner` still holds it.
    async fn siem_failed(
        &self,
        sink: &str,
        owner: &str,
        now_unix: i64,
        error: &str,
    ) -> Result<bool, ProjectionError>;
    /// Lets the lease go.
    async fn release_siem_cursor(&self, sink: &str, owner: &str) -> Result<(), ProjectionError>;
    /// Every workspace's audit events after `position`, in log order.
    async fn audit_events_after(
        &self,
        position: i64,
        limit: i64,
    ) -> Result<Vec<AuditEventRow>, ProjectionError>;
}

const SIEM_COLUMNS: &str = "position, failures, failing_since, last_error";

macro_rules! siem_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl SiemStore for $store {
            async fn ensure_siem_cursor(&self, sink: &str, position: i64) -> Result<(), ProjectionError> {
                sqlx::query(
                    "INSERT INTO siem_cursors (sink, position) VALUES ($1, $2) ON CONFLICT (sink) DO NOTHING",
                )
                .bind(sink)
                .bind(position)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn siem_cursor(&self, sink: &str) -> Result<Option<SiemCursorRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {SIEM_COLUMNS} FROM siem_cursors WHERE sink = $1"))
                    .bind(sink)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn claim_siem_cursor(&self, sink: &str, lease: Lease<'_>) -> Result<Option<SiemCursorRow>, ProjectionError> {
                let done = sqlx::query(
                    "UPDATE siem_cursors SET lease_owner = $2, lease_until = $4
                     WHERE sink = $1 AND (lease_owner = $2 OR lease_owner IS NULL OR lease_until < $3)",
                )
                .bind(sink)
                .bind(lease.owner)
                .bind(lease.now_ms)
                .bind(lease.until_ms)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                self.siem_cursor(sink).await
            }

            async fn advance_siem_cursor(&self, sink: &str, owner: &str, position: i64) -> Result<bool, ProjectionError> {
                let done = sqlx::query(
                    "UPDATE siem_cursors SET position = $3, failures = 0, failing_since = NULL
                     WHERE sink = $1 AND lease_owner = $2 AND position < $3",
                )
                .bind(sink)
                .bind(owner)
                .bind(position)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            async fn siem_failed(&self, sink: &str, owner: &str, now_unix: i64, error: &str) -> Result<bool, ProjectionError> {
                let done = sqlx::query(
                    "UPDATE siem_cursors SET failures = failures + 1,
                         failing_since = COALESCE(failing_since, $3), last_error = $4
                     WHERE sink = $1 AND lease_owner = $2",
                )
                .bind(sink)
                .bind(owner)
                .bind(now_unix)
                .bind(error)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_siem_cursor(&self, sink: &str, owner: &str) -> Result<(), ProjectionError> {
                sqlx::query(
                    "UPDATE siem_cursors SET lease_owner = NULL, lease_until = 0
                     WHERE sink = $1 AND lease_owner = $2",
                )
                .bind(sink)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn audit_events_after(&self, position: i64, limit: i64) -> Result<Vec<AuditEventRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE position > $1 ORDER BY position LIMIT $2"
                ))
                .bind(position)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }
        }
    };
}

siem_store!(SqliteProjections);
siem_store!(PgProjections);

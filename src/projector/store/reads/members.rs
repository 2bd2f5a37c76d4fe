//! Team members, as the team screen and `/v1/members` list them.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};

/// A member as projected (never a password, invite or session secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct MemberRow {
    pub workspace_id: String,
    pub id: String,
    pub email: String,
    pub role: String,
    /// `invited`, `active` or `removed`.
    pub status: String,
    pub second_factor: bool,
    pub invited_at: String,
    pub invite_expires_at: Option<String>,
    pub joined_at: Option<String>,
    pub last_signed_in_at: Option<String>,
    pub updated_at: String,
}

const MEMBER_COLUMNS: &str = "workspace_id, id, email, role, status, second_factor, invited_at, \
                              invite_expires_at, joined_at, last_signed_in_at, updated_at";

#[async_trait::async_trait]
pub trait MemberReads: Send + Sync {
    /// The workspace's members and pending invitees (not removed), oldest invite first.
    async fn members(&self, workspace_id: &str) -> Result<Vec<MemberRow>, ProjectionError>;
    /// One member (removed ones too), only if they belong to `workspace_id`.
    async fn member(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<MemberRow>, ProjectionError>;
    /// Whether a member with this id exists in some *other* workspace (for auditing
    /// cross-workspace attempts; never shown to the caller).
    async fn member_elsewhere(&self, workspace_id: &str, id: &str)
        -> Result<bool, ProjectionError>;
}

macro_rules! member_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl MemberReads for $store {
            async fn members(&self, workspace_id: &str) -> Result<Vec<MemberRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM members WHERE workspace_id = $1 AND status <> 'removed'
                     ORDER BY invited_at, id"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn member(&self, workspace_id: &str, id: &str) -> Result<Option<MemberRow>, ProjectionError> {
                sqlx::query_as(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE workspace_id = $1 AND id = $2"))
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn member_elsewhere(&self, workspace_id: &str, id: &str) -> Result<bool, ProjectionError> {
                self.exists_elsewhere("members", workspace_id, id).await
            }
        }
    };
}

member_reads!(SqliteProjections);
member_reads!(PgProjections);

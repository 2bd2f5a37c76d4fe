//! The compliance audit view: filtered pages, single events, and the facts the access
//! report and checkpoints derive from it.

use super::super::{db, PgProjections, ProjectionError, SqliteProjections};

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from_unix: Option<i64>,
    /// Exclusive upper bound.
    pub to_unix: Option<i64>,
    pub kind: Option<String>,
    /// Kinds starting with this prefix (matched literally: `_` is not a wildcard).
    pub kind_prefix: Option<String>,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub connection_id: Option<String>,
    pub outcome: Option<String>,
    /// Keyset cursor: positions after (ascending) or before (descending) this one.
    pub cursor_position: Option<i64>,
    pub descending: bool,
    pub limit: i64,
}

/// One event as the audit view shows it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditEventRow {
    pub position: i64,
    pub event_id: String,
    pub workspace_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub kind: String,
    pub actor_type: String,
    pub actor_id: String,
    pub occurred_at: String,
    pub key_id: String,
    pub event_hash: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub connection_id: Option<String>,
    pub token_id: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

impl AuditEventRow {
    /// The event as `/v1/audit/events` shows it (and a webhook delivers it).
    pub fn view(&self) -> serde_json::Value {
        let row = self;
        serde_json::json!({
            "position": row.position,
            "event_id": row.event_id,
            "occurred_at": row.occurred_at,
            "workspace_id": row.workspace_id,
            "kind": row.kind,
            "aggregate": { "type": row.aggregate_type, "id": row.aggregate_id, "version": row.aggregate_version },
            "actor": { "type": row.actor_type, "id": row.actor_id },
            "user_id": row.user_id,
            "auth_config_id": row.auth_config_id,
            "connection_id": row.connection_id,
            "token_id": row.token_id,
            "tool": row.tool,
            "outcome": row.outcome,
            "reason": row.reason,
            "key_id": row.key_id,
            "event_hash": row.event_hash,
        })
    }
}

/// A bind parameter of a statement built at run time.
enum SqlArg {
    Int(i64),
    Text(String),
}

/// The audit view query for exactly the filters `f` gives (numbered placeholders work on
/// both backends).
fn audit_query(
    workspace_id: &str,
    f: &AuditFilter,
    cmp: &str,
    order: &str,
) -> (String, Vec<SqlArg>) {
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE workspace_id = $1");
    let mut args = vec![SqlArg::Text(workspace_id.to_string())];
    let mut push_with = |condition: &str, arg: SqlArg, suffix: &str| {
        args.push(arg);
        sql.push_str(&format!(" AND {condition} ${}{suffix}", args.len()));
    };
    let mut push = |condition: &str, arg: SqlArg| push_with(condition, arg, "");
    if let Some(v) = f.from_unix {
        push("occurred_at_unix >=", SqlArg::Int(v));
    }
    if let Some(v) = f.to_unix {
        push("occurred_at_unix <", SqlArg::Int(v));
    }
    let text = |v: &Option<String>| v.clone().map(SqlArg::Text);
    let columns = [
        ("kind =", text(&f.kind)),
        ("actor_id =", text(&f.actor_id)),
        ("user_id =", text(&f.user_id)),
        ("auth_config_id =", text(&f.auth_config_id)),
        ("connection_id =", text(&f.connection_id)),
        ("outcome =", text(&f.outcome)),
    ];
    for (condition, arg) in columns {
        if let Some(arg) = arg {
            push(condition, arg);
        }
    }
    if let Some(v) = f.cursor_position {
        push(&format!("position {cmp}"), SqlArg::Int(v));
    }
    if let Some(prefix) = &f.kind_prefix {
        // `_` and `%` are LIKE wildcards and kinds contain `_` (`connection.refresh_failed`
        // must not match `connection.refreshed`): the prefix is matched literally.
        let escaped: String = prefix
            .chars()
            .flat_map(|c| match c {
                '_' | '%' | '\\' => vec!['\\', c],
                other => vec![other],
            })
            .collect();
        push_with(
            "kind LIKE",
            SqlArg::Text(format!("{escaped}%")),
            " ESCAPE '\\'",
        );
    }
    args.push(SqlArg::Int(f.limit.max(0)));
    sql.push_str(&format!(" ORDER BY position {order} LIMIT ${}", args.len()));
    (sql, args)
}

pub(super) const AUDIT_COLUMNS: &str =
    "position, event_id, workspace_id, aggregate_type, aggregate_id,
    aggregate_version, kind, actor_type, actor_id, occurred_at, key_id, event_hash, user_id,
    auth_config_id, connection_id, token_id, tool, outcome, reason";

#[async_trait::async_trait]
pub trait AuditReads: Send + Sync {
    /// The audit view of one workspace, filtered, in position order (keyset pagination).
    async fn audit_events(
        &self,
        workspace_id: &str,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEventRow>, ProjectionError>;
    /// One audited event of `workspace_id` by event id.
    async fn audit_event(
        &self,
        workspace_id: &str,
        event_id: &str,
    ) -> Result<Option<AuditEventRow>, ProjectionError>;
    /// Whether an event with this id belongs to another workspace (audit only).
    async fn audit_event_elsewhere(
        &self,
        workspace_id: &str,
        event_id: &str,
    ) -> Result<bool, ProjectionError>;
    /// Whether an aggregate of this type and id exists in some other workspace (for
    /// aggregates without a projection of their own: tokens, approvals). Audit only.
    async fn aggregate_elsewhere(
        &self,
        workspace_id: &str,
        aggregate_type: &str,
        id: &str,
    ) -> Result<bool, ProjectionError>;
    /// Connection ids the audit view links to `user_id`, up to `until_unix` (inclusive).
    async fn audited_connections_of_user(
        &self,
        workspace_id: &str,
        user_id: &str,
        until_unix: i64,
    ) -> Result<Vec<String>, ProjectionError>;
    /// Who acted on a connection up to `until_unix`: (actor type, actor id, events, last
    /// time as unix seconds), most recent first.
    async fn actors_of_connection(
        &self,
        workspace_id: &str,
        connection_id: &str,
        until_unix: i64,
    ) -> Result<Vec<(String, String, i64, i64)>, ProjectionError>;
    /// `(position, event_hash)` of positions `from..=to`, in order (Merkle leaves).
    async fn event_hashes(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Option<String>)>, ProjectionError>;
}

macro_rules! audit_reads {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl AuditReads for $store {
            async fn audit_events(
                &self,
                workspace_id: &str,
                f: &AuditFilter,
            ) -> Result<Vec<AuditEventRow>, ProjectionError> {
                // Only the filters given go into the statement: `($n IS NULL OR col = $n)`
                // keeps SQLite from using the per-column indexes, and deep cursors would
                // re-scan what earlier pages read.
                let (cmp, order) = if f.descending { ("<", "DESC") } else { (">", "ASC") };
                let (sql, args) = audit_query(workspace_id, f, cmp, order);
                let mut q = sqlx::query_as(&sql);
                for a in args {
                    q = match a {
                        SqlArg::Int(v) => q.bind(v),
                        SqlArg::Text(v) => q.bind(v),
                    };
                }
                q.fetch_all(&self.pool).await.map_err(db)
            }

            async fn audit_event(
                &self,
                workspace_id: &str,
                event_id: &str,
            ) -> Result<Option<AuditEventRow>, ProjectionError> {
                sqlx::query_as(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE workspace_id = $1 AND event_id = $2"
                ))
                .bind(workspace_id)
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
            }

            async fn audit_event_elsewhere(
                &self,
                workspace_id: &str,
                event_id: &str,
            ) -> Result<bool, ProjectionError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM audit_events WHERE workspace_id <> $1 AND event_id = $2",
                )
                .bind(workspace_id)
                .bind(event_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
                Ok(n > 0)
            }

            async fn aggregate_elsewhere(
                &self,
                workspace_id: &str,
                aggregate_type: &str,
                id: &str,
            ) -> Result<bool, ProjectionError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM audit_events WHERE workspace_id <> $1 AND aggregate_type = $2
                     AND aggregate_id = $3",
                )
                .bind(workspace_id)
                .bind(aggregate_type)
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
                Ok(n > 0)
            }

            async fn audited_connections_of_user(
                &self,
                workspace_id: &str,
                user_id: &str,
                until_unix: i64,
            ) -> Result<Vec<String>, ProjectionError> {
                sqlx::query_scalar(
                    "SELECT connection_id FROM audit_events WHERE workspace_id = $1 AND user_id = $2
                     AND connection_id IS NOT NULL AND occurred_at_unix <= $3
                     GROUP BY connection_id ORDER BY MIN(position)",
                )
                .bind(workspace_id)
                .bind(user_id)
                .bind(until_unix)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn actors_of_connection(
                &self,
                workspace_id: &str,
                connection_id: &str,
                until_unix: i64,
            ) -> Result<Vec<(String, String, i64, i64)>, ProjectionError> {
                sqlx::query_as(
                    "SELECT actor_type, actor_id, COUNT(*), MAX(occurred_at_unix) FROM audit_events
                     WHERE workspace_id = $1 AND connection_id = $2 AND occurred_at_unix <= $3
                     GROUP BY actor_type, actor_id ORDER BY MAX(position) DESC",
                )
                .bind(workspace_id)
                .bind(connection_id)
                .bind(until_unix)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

            async fn event_hashes(
                &self,
                from: i64,
                to: i64,
            ) -> Result<Vec<(i64, Option<String>)>, ProjectionError> {
                sqlx::query_as(
                    "SELECT position, event_hash FROM audit_events WHERE position >= $1 AND position <= $2
                     ORDER BY position",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }
        }
    };
}

audit_reads!(SqliteProjections);
audit_reads!(PgProjections);

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::SqlitePool;

    #[test]
    fn a_kind_prefix_is_matched_literally() {
        let filter = AuditFilter {
            kind_prefix: Some("connection.refresh_".into()),
            limit: 10,
            ..Default::default()
        };
        let (sql, args) = audit_query("ws1", &filter, "<", "DESC");
        assert!(sql.contains("kind LIKE $2 ESCAPE '\\'"), "{sql}");
        match &args[1] {
            SqlArg::Text(pattern) => assert_eq!(pattern, "connection.refresh\\_%"),
            SqlArg::Int(_) => unreachable!("the pattern is text"),
        }
    }

    #[tokio::test]
    async fn the_escaped_pattern_does_not_match_across_an_underscore() {
        let filter = AuditFilter {
            kind_prefix: Some("connection.refresh_".into()),
            ..Default::default()
        };
        let (_, args) = audit_query("ws1", &filter, "<", "DESC");
        let SqlArg::Text(pattern) = &args[1] else {
            unreachable!("the pattern is text")
        };
        let pool = SqlitePool::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        for (kind, matches) in [
            ("connection.refresh_failed", true),
            ("connection.refreshed", false),
        ] {
            let got: bool = sqlx::query_scalar("SELECT $1 LIKE $2 ESCAPE '\\'")
                .bind(kind)
                .bind(pattern)
                .fetch_one(&pool)
                .await
                .expect("like");
            assert_eq!(got, matches, "{kind}");
        }
    }
}

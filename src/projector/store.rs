//! Projection stores: one implementation per SQL backend (the SQL lives in
//! `projections/<backend>/`). Each batch runs in one transaction that first locks the
//! projection's offset row, so with several instances every event is applied exactly once
//! per projection, and a crash leaves offset and rows consistent.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use super::cache::{Family, ReadCache};
use super::plan::{plan, Op};
use crate::domain::Event;
use crate::ledger::envelope::open_envelope;
use crate::ledger::{EventLog, LogError};

pub const PROJECTION: &str = "state";
/// Every projection `replay --projection` can rebuild.
pub const PROJECTIONS: &[&str] = &[PROJECTION];

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
    async fn catch_up(&self, log: &dyn EventLog, limit: usize) -> Result<u64, ProjectionError> {
        self.apply_next(log, limit, &[]).await
    }
    /// Like `catch_up`, given the events that follow in order as the caller already holds
    /// them (from a log subscription): when they continue the stored offset exactly they
    /// are applied without reading the log again; otherwise the log is read.
    async fn apply_next(
        &self,
        log: &dyn EventLog,
        limit: usize,
        known: &[crate::ledger::RecordedEvent],
    ) -> Result<u64, ProjectionError>;
    /// The position of the last applied event.
    async fn offset(&self) -> Result<u64, ProjectionError>;
    /// The last offset this instance saw applied (by its projector, or read by `offset`):
    /// read-your-writes waits on it instead of polling the database.
    fn applied(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Empties every projection (they are rebuilt by replaying the log).
    async fn reset(&self) -> Result<(), ProjectionError>;
    /// Rebuilds every projection from the log in ONE transaction: locks the offset row,
    /// empties the tables, applies the events at positions `1..=until`, sets the offset to
    /// the last one applied and commits. Readers see the previous state until the commit;
    /// another instance's batch waits on the offset row, then continues from `until`.
    /// `progress` is told the number of events applied after each batch. Returns that number.
    async fn rebuild(
        &self,
        log: &dyn EventLog,
        until: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, ProjectionError>;
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
    /// Whether an aggregate of this type and id exists in some other workspace (for
    /// aggregates without a projection of their own: tokens, approvals). Audit only.
    async fn aggregate_elsewhere(
        &self,
        workspace_id: &str,
        aggregate_type: &str,
        id: &str,
    ) -> Result<bool, ProjectionError>;
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
    /// Live connections (initiated, active, needs_reconsent) of one auth config, by id.
    async fn live_connections_of(
        &self,
        workspace_id: &str,
        auth_config_id: &str,
    ) -> Result<Vec<ConnectionRow>, ProjectionError>;
}

/// Filters of the audit view; `None` means "any".
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

const AUDIT_COLUMNS: &str = "position, event_id, workspace_id, aggregate_type, aggregate_id,
    aggregate_version, kind, actor_type, actor_id, occurred_at, key_id, event_hash, user_id,
    auth_config_id, connection_id, token_id, tool, outcome, reason";

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

/// Statuses of a connection that still holds (or awaits) a grant.
const LIVE_CONNECTION: &str = "('initiated', 'active', 'needs_reconsent')";

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

const GATEWAY_COLUMNS: &str =
    "id, name, servers, agent_key_ids, status, version, created_at, updated_at";

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

/// Stored public settings with the client secret's fingerprint replaced (a rotation).
fn with_client_secret_fingerprint(settings: &str, fingerprint: String) -> String {
    let mut v: serde_json::Value = serde_json::from_str(settings).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "client_secret".into(),
            serde_json::json!({ "fingerprint": fingerprint }),
        );
    }
    v.to_string()
}

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
            Ok((
                rec.position,
                plan(rec.position, &opened.body, &event, &opened.hash),
            ))
        })
        .collect()
}

const RESET_SQL: &str = "DELETE FROM audit_events; DELETE FROM api_keys; DELETE FROM workspaces;
     DELETE FROM auth_configs; DELETE FROM auth_config_versions; DELETE FROM connections;
     DELETE FROM workspace_tools; DELETE FROM gateways; DELETE FROM gateway_keys;
     DELETE FROM approvals;
     UPDATE projection_offsets SET position = 0;";

/// Most audit rows in one `INSERT` (20 parameters each: far below either database's limit).
const AUDIT_ROWS_PER_INSERT: usize = 64;

/// How a multi-row statement names its parameters. SQLite looks a numbered (named)
/// parameter up by walking a list, once per parameter bound: quadratic in a statement
/// with a thousand of them, so SQLite gets anonymous `?` (values bound again where they
/// repeat) and PostgreSQL `$n`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placeholders {
    Anonymous,
    Numbered,
}

/// The parameters of one audit row in the order they appear in its `VALUES (…)`: the
/// workspace (3) and the connection (16) also feed the lookups of a missing user and
/// auth config.
const AUDIT_ROW_PARAMS: [usize; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3, 16, 15, 3, 16, 16, 17, 18, 19, 20,
];

/// The values of one audit row in the order they are bound: as they appear in the row
/// (anonymous placeholders), or each once, `$1` to `$20` (numbered).
fn audit_bind_order(placeholders: Placeholders) -> &'static [usize] {
    const NUMBERED: [usize; 20] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    ];
    match placeholders {
        Placeholders::Anonymous => &AUDIT_ROW_PARAMS,
        Placeholders::Numbered => &NUMBERED,
    }
}

/// `INSERT INTO audit_events … VALUES (…), (…)` for `rows` rows. Built for the sizes
/// `exec_ops` uses (powers of two up to `AUDIT_ROWS_PER_INSERT`) and kept, so each is
/// prepared once per connection. A missing user or auth config is filled from the
/// connection's row: consecutive audit rows have no other write between them, so one
/// statement sees what one statement per row would have seen.
fn audit_insert_sql(rows: usize, placeholders: Placeholders) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
    let build = |placeholders: Placeholders| -> Vec<String> {
        (0..=AUDIT_ROWS_PER_INSERT.trailing_zeros())
            .map(|exp| {
                let values: Vec<String> = (0..1usize << exp)
                    .map(|row| {
                        let p: Vec<String> = AUDIT_ROW_PARAMS
                            .iter()
                            .map(|n| match placeholders {
                                Placeholders::Anonymous => "?".to_string(),
                                Placeholders::Numbered => format!("${}", row * 20 + n),
                            })
                            .collect();
                        format!(
                            "({}, COALESCE({}, (SELECT c.user_id FROM connections c WHERE c.workspace_id = {} AND c.id = {})),
                             COALESCE({}, (SELECT c.auth_config_id FROM connections c WHERE c.workspace_id = {} AND c.id = {})),
                             {})",
                            p[..13].join(", "),
                            p[13], p[14], p[15],
                            p[16], p[17], p[18],
                            p[19..].join(", ")
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO audit_events (position, event_id, workspace_id, aggregate_type,
                     aggregate_id, aggregate_version, kind, actor_type, actor_id, occurred_at, key_id,
                     occurred_at_unix, event_hash, user_id, auth_config_id, connection_id, outcome, reason,
                     token_id, tool) VALUES {}",
                    values.join(", ")
                )
            })
            .collect()
    };
    let all = SQL.get_or_init(|| {
        [
            build(Placeholders::Anonymous),
            build(Placeholders::Numbered),
        ]
    });
    let set = &all[usize::from(placeholders == Placeholders::Numbered)];
    let exp = rows.max(1).ilog2() as usize;
    set.get(exp).map_or("", String::as_str)
}

/// Splits `n` rows into the chunk sizes `audit_insert_sql` has (largest first).
fn audit_chunks(mut n: usize) -> Vec<usize> {
    let mut chunks = Vec::new();
    while n > 0 {
        let size = if n >= AUDIT_ROWS_PER_INSERT {
            AUDIT_ROWS_PER_INSERT
        } else {
            1 << n.ilog2()
        };
        chunks.push(size);
        n -= size;
    }
    chunks
}

/// Events read from the log per round trip of a rebuild.
const REBUILD_BATCH: u64 = 1024;

/// The same statements serve both backends (`$n` placeholders work in SQLite too); only
/// the pool type, the way a batch takes its lock and the migrations differ.
macro_rules! sql_projection_store {
    ($store:ident, $pool:ty, $lock_sql:expr, $placeholders:expr) => {
        impl $store {
            /// Offsets only grow (until a `reset`): announces the highest seen.
            fn announce(&self, offset: u64) {
                self.applied.send_if_modified(|seen| {
                    let newer = offset > *seen;
                    if newer {
                        *seen = offset;
                    }
                    newer
                });
            }

            /// An offset read from the database: when it moved past what this instance
            /// knew, someone else applied the events in between, so any cached read may be
            /// stale.
            fn saw_offset(&self, offset: u64) {
                if offset > *self.applied.borrow() {
                    self.cache.changed_all();
                    self.announce(offset);
                }
            }

            /// `read` answered from the cache while `family` has not changed since.
            async fn cached<T, F>(&self, family: Family, key: String, read: F) -> Result<T, ProjectionError>
            where
                T: Clone + Send + Sync + 'static,
                F: std::future::Future<Output = Result<T, ProjectionError>>,
            {
                if let Some(hit) = self.cache.get::<T>(family, &key) {
                    return Ok(hit);
                }
                let generation = self.cache.generation(family);
                let value = read.await?;
                self.cache.put(family, key, generation, value.clone());
                Ok(value)
            }

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

            /// Runs one batch's planned ops in order; consecutive audit rows go in as few
            /// multi-row `INSERT`s as their count allows (one statement costs a round trip).
            async fn exec_ops<'c>(
                tx: &mut sqlx::Transaction<'c, <$pool as PoolDb>::Db>,
                planned: Vec<(u64, Vec<Op>)>,
                changed: &mut Vec<Family>,
            ) -> Result<(), ProjectionError> {
                let failed = |position: u64| move |e: sqlx::Error| ProjectionError::Undecodable {
                    position,
                    reason: e.to_string(),
                };
                let mut audits: Vec<(u64, super::plan::AuditRow)> = Vec::new();
                for (position, ops) in planned {
                    for op in ops {
                        if let Some(family) = op.family() {
                            if !changed.contains(&family) {
                                changed.push(family);
                            }
                        }
                        match op {
                            Op::Audit(row) => audits.push((position, row)),
                            other => {
                                Self::insert_audits(tx, std::mem::take(&mut audits)).await?;
                                Self::exec_op(tx, other).await.map_err(failed(position))?;
                            }
                        }
                    }
                }
                Self::insert_audits(tx, audits).await
            }

            /// Binds one audit row's values in `AUDIT_ROW_PARAMS` order (anonymous
            /// placeholders) or once each (numbered).
            fn bind_audit<'q>(
                mut query: sqlx::query::Query<'q, <$pool as PoolDb>::Db, <<$pool as PoolDb>::Db as sqlx::Database>::Arguments<'q>>,
                a: &'q super::plan::AuditRow,
            ) -> sqlx::query::Query<'q, <$pool as PoolDb>::Db, <<$pool as PoolDb>::Db as sqlx::Database>::Arguments<'q>> {
                for n in audit_bind_order($placeholders) {
                    query = match n {
                        1 => query.bind(a.position),
                        2 => query.bind(a.event_id.as_str()),
                        3 => query.bind(a.workspace_id.as_str()),
                        4 => query.bind(a.aggregate_type.as_str()),
                        5 => query.bind(a.aggregate_id.as_str()),
                        6 => query.bind(a.aggregate_version),
                        7 => query.bind(a.kind.as_str()),
                        8 => query.bind(a.actor_type.as_str()),
                        9 => query.bind(a.actor_id.as_str()),
                        10 => query.bind(a.occurred_at.as_str()),
                        11 => query.bind(a.key_id.as_str()),
                        12 => query.bind(a.occurred_at_unix),
                        13 => query.bind(a.event_hash.as_str()),
                        14 => query.bind(a.user_id.as_deref()),
                        15 => query.bind(a.auth_config_id.as_deref()),
                        16 => query.bind(a.connection_id.as_deref()),
                        17 => query.bind(a.outcome.as_deref()),
                        18 => query.bind(a.reason.as_deref()),
                        19 => query.bind(a.token_id.as_deref()),
                        _ => query.bind(a.tool.as_deref()),
                    };
                }
                query
            }

            async fn insert_audits<'c>(
                tx: &mut sqlx::Transaction<'c, <$pool as PoolDb>::Db>,
                rows: Vec<(u64, super::plan::AuditRow)>,
            ) -> Result<(), ProjectionError> {
                let mut rows = rows.into_iter();
                for size in audit_chunks(rows.len()) {
                    let chunk: Vec<_> = rows.by_ref().take(size).collect();
                    let first = chunk.first().map_or(0, |(p, _)| *p);
                    let mut query = sqlx::query(audit_insert_sql(size, $placeholders));
                    for (_, a) in &chunk {
                        query = Self::bind_audit(query, a);
                    }
                    query.execute(&mut **tx).await.map_err(|e| ProjectionError::Undecodable {
                        position: first,
                        reason: e.to_string(),
                    })?;
                }
                Ok(())
            }

            async fn exec_op<'c>(
                tx: &mut sqlx::Transaction<'c, <$pool as PoolDb>::Db>,
                op: Op,
            ) -> Result<(), sqlx::Error> {
                match op {
                    Op::Audit(a) => {
                        Self::bind_audit(sqlx::query(audit_insert_sql(1, $placeholders)), &a)
                            .execute(&mut **tx)
                            .await?;
                    }
                    Op::DefineWorkspaceTool { workspace_id, name, definition, version, at } => {
                        sqlx::query(
                            "INSERT INTO workspace_tools (workspace_id, name, definition, version, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $5)
                             ON CONFLICT (workspace_id, name) DO UPDATE SET definition = $3, version = $4, updated_at = $5",
                        )
                        .bind(workspace_id)
                        .bind(name)
                        .bind(definition)
                        .bind(version)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    }
                    Op::RemoveWorkspaceTool { workspace_id, name } => {
                        sqlx::query("DELETE FROM workspace_tools WHERE workspace_id = $1 AND name = $2")
                            .bind(workspace_id)
                            .bind(name)
                            .execute(&mut **tx)
                            .await?;
                    }
                    Op::RequestApproval { workspace_id, id, user_id, connection_id, tool, argument_fingerprint, expires_at, at } => {
                        sqlx::query(
                            "INSERT INTO approvals (workspace_id, id, user_id, connection_id, tool, argument_fingerprint,
                             status, expires_at, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $8)",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(user_id)
                        .bind(connection_id)
                        .bind(tool)
                        .bind(argument_fingerprint)
                        .bind(expires_at)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    }
                    Op::ApprovalStatus { workspace_id, id, status, tool_call_id, at } => {
                        sqlx::query(
                            "UPDATE approvals SET status = $3, tool_call_id = COALESCE($4, tool_call_id), updated_at = $5
                             WHERE workspace_id = $1 AND id = $2",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(status)
                        .bind(tool_call_id)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    }
                    Op::DefineGateway { workspace_id, id, name, servers, agent_key_ids, version, at } => {
                        let keys = serde_json::to_string(&agent_key_ids).unwrap_or_default();
                        sqlx::query(
                            "INSERT INTO gateways (workspace_id, id, name, servers, agent_key_ids, status, version, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)
                             ON CONFLICT (workspace_id, id) DO UPDATE SET name = $3, servers = $4, agent_key_ids = $5,
                             version = $6, updated_at = $7",
                        )
                        .bind(&workspace_id)
                        .bind(&id)
                        .bind(name)
                        .bind(servers)
                        .bind(keys)
                        .bind(version)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                        // Keys left out are released, not forgotten: a key once bound
                        // stays restricted to the gateways that list it.
                        sqlx::query("UPDATE gateway_keys SET released = TRUE WHERE workspace_id = $1 AND gateway_id = $2")
                            .bind(&workspace_id)
                            .bind(&id)
                            .execute(&mut **tx)
                            .await?;
                        for key in agent_key_ids {
                            sqlx::query(
                                "INSERT INTO gateway_keys (workspace_id, gateway_id, api_key_id, released)
                                 VALUES ($1, $2, $3, FALSE)
                                 ON CONFLICT (workspace_id, gateway_id, api_key_id) DO UPDATE SET released = FALSE",
                            )
                            .bind(&workspace_id)
                            .bind(&id)
                            .bind(key)
                            .execute(&mut **tx)
                            .await?;
                        }
                    }
                    Op::DeleteGateway { workspace_id, id, version, at } => {
                        // Bindings stay: a key bound only to deleted gateways reaches nothing
                        // (deleting a gateway never widens what its agents may do).
                        sqlx::query(
                            "UPDATE gateways SET status = 'deleted', version = $3, updated_at = $4
                             WHERE workspace_id = $1 AND id = $2",
                        )
                        .bind(&workspace_id)
                        .bind(&id)
                        .bind(version)
                        .bind(at)
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
                    Op::SetToolResponseStorage { id, store_tool_responses, version } => {
                        let done = sqlx::query(
                            "UPDATE workspaces SET store_tool_responses = $1, version = $2
                             WHERE id = $3 AND version = $2 - 1",
                        )
                        .bind(store_tool_responses)
                        .bind(version)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                        if done.rows_affected() != 1 {
                            return Err(sqlx::Error::Protocol("workspace change out of order".into()));
                        }
                    }
                    Op::AuthConfigVersion {
                        workspace_id, id, version, kind, name, provider, auth_type, status, settings,
                        client_secret_fingerprint, changed, at, actor_id,
                    } => {
                        let settings = match (settings, client_secret_fingerprint) {
                            (None, Some(fingerprint)) => {
                                let current: Option<String> = sqlx::query_scalar(
                                    "SELECT settings FROM auth_configs WHERE workspace_id = $1 AND id = $2",
                                )
                                .bind(&workspace_id)
                                .bind(&id)
                                .fetch_optional(&mut **tx)
                                .await?;
                                current.map(|s| with_client_secret_fingerprint(&s, fingerprint))
                            }
                            (settings, _) => settings,
                        };
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
                    Op::ConnectionChange { workspace_id, id, version, at, change } => {
                        if let Some(new) = change.new {
                            sqlx::query(
                                "INSERT INTO connections (workspace_id, id, auth_config_id, user_id, status, scopes,
                                 requested_scopes, redirect_url, state_hash, created_at, updated_at, version)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
                            )
                            .bind(workspace_id)
                            .bind(id)
                            .bind(new.auth_config_id)
                            .bind(new.user_id)
                            .bind(change.status.unwrap_or_default())
                            .bind(change.scopes.unwrap_or_else(|| "[]".into()))
                            .bind(new.requested_scopes)
                            .bind(new.redirect_url)
                            .bind(new.state_hash)
                            .bind(at)
                            .bind(version)
                            .execute(&mut **tx)
                            .await?;
                        } else {
                            let set_tokens = change.tokens.is_some();
                            let (expires_at, expires_at_unix, has_refresh_token) = match change.tokens {
                                Some(t) => (t.expires_at, t.expires_at_unix, t.has_refresh_token),
                                None => (None, None, false),
                            };
                            let set_reason = change.status_reason.is_some();
                            // Guarded by version: an event is never applied twice or out of order.
                            let done = sqlx::query(
                                "UPDATE connections SET status = COALESCE($1, status), scopes = COALESCE($2, scopes),
                                 expires_at = CASE WHEN $3 THEN $4 ELSE expires_at END,
                                 expires_at_unix = CASE WHEN $3 THEN $5 ELSE expires_at_unix END,
                                 has_refresh_token = CASE WHEN $3 THEN $6 ELSE has_refresh_token END,
                                 state_hash = CASE WHEN $7 THEN NULL ELSE state_hash END,
                                 status_reason = CASE WHEN $8 THEN $9 ELSE status_reason END,
                                 last_refreshed_at = CASE WHEN $10 THEN $11 ELSE last_refreshed_at END,
                                 updated_at = $11, version = $12
                                 WHERE workspace_id = $13 AND id = $14 AND version = $12 - 1",
                            )
                            .bind(change.status)
                            .bind(change.scopes)
                            .bind(set_tokens)
                            .bind(expires_at)
                            .bind(expires_at_unix)
                            .bind(has_refresh_token)
                            .bind(change.clear_state_hash)
                            .bind(set_reason)
                            .bind(change.status_reason.flatten())
                            .bind(change.refreshed)
                            .bind(at)
                            .bind(version)
                            .bind(workspace_id)
                            .bind(id)
                            .execute(&mut **tx)
                            .await?;
                            if done.rows_affected() != 1 {
                                return Err(sqlx::Error::Protocol("connection change out of order".into()));
                            }
                        }
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
            async fn apply_next(
                &self,
                log: &dyn EventLog,
                limit: usize,
                known: &[crate::ledger::RecordedEvent],
            ) -> Result<u64, ProjectionError> {
                let mut tx = self.begin().await.map_err(db)?;
                let offset: i64 = sqlx::query_scalar($lock_sql)
                    .bind(PROJECTION)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                let offset = u64::try_from(offset).unwrap_or(0);
                // Another instance may have applied up to here.
                self.saw_offset(offset);
                let next = known.iter().position(|e| e.position > offset);
                let events = match next {
                    Some(i) if known[i].position == offset + 1 => {
                        known[i..known.len().min(i + limit)].to_vec()
                    }
                    _ => log.read_from(offset + 1, limit).await?,
                };
                if events.is_empty() {
                    return Ok(0);
                }
                let planned = plan_batch(&events)?;
                let last = planned.last().map_or(offset, |(position, _)| *position);
                let mut changed = Vec::new();
                Self::exec_ops(&mut tx, planned, &mut changed).await?;
                sqlx::query("UPDATE projection_offsets SET position = $1 WHERE name = $2")
                    .bind(i64::try_from(last).unwrap_or(i64::MAX))
                    .bind(PROJECTION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                // Stale entries go before the new offset is announced (read-your-writes).
                for family in changed {
                    self.cache.changed(family);
                }
                self.announce(last);
                self.restart_wal_when_asked().await;
                self.checkpoint_when_due();
                Ok(events.len() as u64)
            }

            async fn offset(&self) -> Result<u64, ProjectionError> {
                let p: i64 = sqlx::query_scalar("SELECT position FROM projection_offsets WHERE name = $1")
                    .bind(PROJECTION)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
                let p = u64::try_from(p).unwrap_or(0);
                self.saw_offset(p);
                Ok(p)
            }

            fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
                self.applied.subscribe()
            }

            async fn reset(&self) -> Result<(), ProjectionError> {
                sqlx::raw_sql(RESET_SQL).execute(&self.pool).await.map_err(db)?;
                self.cache.changed_all();
                self.applied.send_replace(0);
                Ok(())
            }

            async fn rebuild(
                &self,
                log: &dyn EventLog,
                until: u64,
                progress: &(dyn Fn(u64) + Send + Sync),
            ) -> Result<u64, ProjectionError> {
                let mut tx = self.begin().await.map_err(db)?;
                let _: i64 = sqlx::query_scalar($lock_sql)
                    .bind(PROJECTION)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                for statement in RESET_SQL.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(statement).execute(&mut *tx).await.map_err(db)?;
                }
                let mut last = 0;
                let mut applied = 0;
                while last < until {
                    let limit = usize::try_from((until - last).min(REBUILD_BATCH)).unwrap_or(1);
                    let mut events = log.read_from(last + 1, limit).await?;
                    events.retain(|e| e.position <= until);
                    if events.is_empty() {
                        break;
                    }
                    let planned = plan_batch(&events)?;
                    if let Some((position, _)) = planned.last() {
                        last = *position;
                    }
                    applied += planned.len() as u64;
                    Self::exec_ops(&mut tx, planned, &mut Vec::new()).await?;
                    progress(applied);
                }
                sqlx::query("UPDATE projection_offsets SET position = $1 WHERE name = $2")
                    .bind(i64::try_from(last).unwrap_or(i64::MAX))
                    .bind(PROJECTION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                self.cache.changed_all();
                self.announce(last);
                self.checkpoint_when_due();
                Ok(applied)
            }

            fn describe(&self) -> String {
                self.description.clone()
            }

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
                let read = async {
                    sqlx::query_as(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND id = $2"))
                        .bind(workspace_id)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db)
                };
                self.cached(Family::Connections, format!("{workspace_id}/{id}"), read).await
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

            async fn approvals_of_user(
                &self,
                workspace_id: &str,
                user_id: &str,
                limit: i64,
            ) -> Result<Vec<ApprovalRow>, ProjectionError> {
                sqlx::query_as(
                    "SELECT id, user_id, connection_id, tool, argument_fingerprint, status, expires_at,
                     tool_call_id, created_at, updated_at FROM approvals
                     WHERE workspace_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3",
                )
                .bind(workspace_id)
                .bind(user_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
            }

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
    applied: tokio::sync::watch::Sender<u64>,
    cache: ReadCache,
    checkpoints: Checkpoints,
}

/// When the projections' WAL was last copied into the database file. Checkpoints run in a
/// task of their own (PASSIVE), not inside the projector's commit, which they would hold
/// (and every read-your-writes wait with it) for milliseconds; when the WAL is long, the
/// projector checkpoints once itself between two batches so the WAL starts over (see
/// `crate::wal`).
#[derive(Default)]
struct Checkpoints {
    policy: crate::wal::WalPolicy,
    last: std::sync::Mutex<Option<std::time::Instant>>,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    restart: crate::wal::WalRestart,
}

impl SqliteProjections {
    fn checkpoint_when_due(&self) {
        use std::sync::atomic::Ordering;
        let now = std::time::Instant::now();
        if let Ok(mut last) = self.checkpoints.last.lock() {
            if last
                .is_some_and(|t| now.duration_since(t) < self.checkpoints.policy.checkpoint_every)
            {
                return;
            }
            *last = Some(now);
        }
        if self.checkpoints.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.pool.clone();
        let running = self.checkpoints.running.clone();
        let restart = self.checkpoints.restart.clone();
        let policy = self.checkpoints.policy;
        tokio::spawn(async move {
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                Ok((_, frames, _)) => restart.after_pass(&policy, frames),
                Err(e) => tracing::warn!(error = %e, "projection checkpoint failed"),
            }
            running.store(false, Ordering::Release);
        });
    }

    /// The projector's own checkpoint, between two batches, when the checkpointer asked.
    async fn restart_wal_when_asked(&self) {
        if self.checkpoints.restart.take() {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = %e, "projection checkpoint by the projector failed");
            }
        }
    }
}

impl PgProjections {
    /// PostgreSQL checkpoints on its own.
    fn checkpoint_when_due(&self) {}

    async fn restart_wal_when_asked(&self) {}
}

impl SqliteProjections {
    pub async fn open(path: &std::path::Path) -> Result<Self, ProjectionError> {
        Self::open_with(path, crate::wal::WalPolicy::default()).await
    }

    /// `open`, with the WAL checkpointed and started over as `wal` says.
    pub async fn open_with(
        path: &std::path::Path,
        wal: crate::wal::WalPolicy,
    ) -> Result<Self, ProjectionError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| ProjectionError::Misconfigured(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", wal.journal_size_limit().to_string())
            // A batch's multi-row inserts need a statement journal: in memory, not a temp
            // file created, written and unlinked per batch.
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // An in-process file: no connection to go stale, and a ping costs a round
            // trip to the connection's worker thread on every acquire.
            .test_before_acquire(false)
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
            applied: tokio::sync::watch::Sender::new(0),
            cache: ReadCache::default(),
            checkpoints: Checkpoints {
                policy: wal,
                ..Checkpoints::default()
            },
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front: the batch is serialised with any other.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection to the file, waiting (bounded) also for ones that were still
    /// on their way back to the pool when it closed (`SqlitePool::close` alone can miss
    /// those, leaving one open).
    pub async fn close(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.pool.close().await;
            if self.pool.size() == 0 || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

sql_projection_store!(
    SqliteProjections,
    SqlitePool,
    "SELECT position FROM projection_offsets WHERE name = $1",
    Placeholders::Anonymous
);

pub struct PgProjections {
    pool: PgPool,
    description: String,
    applied: tokio::sync::watch::Sender<u64>,
    cache: ReadCache,
}

impl PgProjections {
    pub async fn open(url: &str) -> Result<Self, ProjectionError> {
        let options = url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|e| ProjectionError::Misconfigured(format!("bad PostgreSQL URL: {e}")))?
            // Statements are prepared once per connection; a generic plan cached while
            // the tables were small (a replay into fresh tables) turns connection lookups
            // into scans. Plan each execution for its values instead.
            .options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
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
            applied: tokio::sync::watch::Sender::new(0),
            cache: ReadCache::default(),
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
    "SELECT position FROM projection_offsets WHERE name = $1 FOR UPDATE",
    Placeholders::Numbered
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rows_go_in_power_of_two_chunks() {
        assert!(audit_chunks(0).is_empty());
        assert_eq!(audit_chunks(1), vec![1]);
        assert_eq!(audit_chunks(13), vec![8, 4, 1]);
        assert_eq!(audit_chunks(200), vec![64, 64, 64, 8]);
        for n in [1, 2, 4, 8, 64] {
            let sql = audit_insert_sql(n, Placeholders::Numbered);
            assert!(sql.contains(&format!("${}", 20 * n)), "{n}");
            assert!(!sql.contains(&format!("${}", 20 * n + 1)), "{n}");
            let sql = audit_insert_sql(n, Placeholders::Anonymous);
            assert_eq!(sql.matches('?').count(), 24 * n, "{n}");
            assert!(!sql.contains('$'), "{n}");
        }
        // Binding follows the statement: anonymous values in the order the numbered
        // statement names them, numbered values once each in order.
        let named: Vec<usize> = audit_insert_sql(1, Placeholders::Numbered)
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        assert_eq!(audit_bind_order(Placeholders::Anonymous), named.as_slice());
        assert_eq!(
            audit_bind_order(Placeholders::Numbered),
            (1..=20).collect::<Vec<usize>>().as_slice()
        );
    }

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

//! A batch's updates of connection rows go in as one multi-row `UPDATE … FROM (VALUES …)`
//! (one statement costs a round trip): the statement per size and backend. Several updates
//! of one row in a batch are folded into one (`RowUpdate::absorb`: what the row looks like
//! after all of them), so a refresh round's events cost one row write, not three. Each row
//! keeps the single-row update's guard (the version before its first update), so the
//! statement changes exactly as many rows as it has values, or one came out of order.

use super::audit_insert::Placeholders;
use super::by_connection::ByConnection;
use super::multi_row::{values_list, PerSize};
use crate::projector::op::{ConnectionOp, TokenState};

/// Most connection updates in one statement (15 parameters each).
pub(super) const CONNECTION_UPDATES_PER_STATEMENT: usize = 64;

/// Parameters of one row, in bind order: status, scopes, set_tokens, expires_at,
/// expires_at_unix, has_refresh_token, clear_state_hash, set_reason, reason, refreshed_at,
/// at, version, from_version, workspace_id, id.
pub(super) const CONNECTION_UPDATE_PARAMS: usize = 15;

/// One connection row's updates in a batch, folded: the row after all of them, guarded
/// by the version it had before the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RowUpdate {
    /// The position of the first folded event: the one named if the row is out of order.
    pub position: u64,
    pub workspace_id: String,
    pub id: String,
    /// The row's version before the first folded update.
    pub from_version: i64,
    /// The version after the last.
    pub version: i64,
    /// The last folded event's time (`updated_at`).
    pub at: String,
    pub status: Option<&'static str>,
    pub scopes: Option<String>,
    pub tokens: Option<TokenState>,
    pub status_reason: Option<Option<String>>,
    pub clear_state_hash: bool,
    /// The time of the last folded refresh (`last_refreshed_at`).
    pub refreshed_at: Option<String>,
}

impl RowUpdate {
    pub fn of(position: u64, op: ConnectionOp) -> RowUpdate {
        let change = op.change;
        RowUpdate {
            position,
            from_version: op.version - 1,
            version: op.version,
            refreshed_at: change.refreshed.then(|| op.at.clone()),
            at: op.at,
            workspace_id: op.workspace_id,
            id: op.id,
            status: change.status,
            scopes: change.scopes,
            tokens: change.tokens,
            status_reason: change.status_reason,
            clear_state_hash: change.clear_state_hash,
        }
    }

    /// Whether `later` is the next update of this row (anything else is applied on its
    /// own after this one, so an event out of order is still named).
    pub fn continued_by(&self, later: &RowUpdate) -> bool {
        later.workspace_id == self.workspace_id
            && later.id == self.id
            && later.from_version == self.version
    }

    /// Folds in the next update of the same row (`continued_by`): every column the later
    /// one sets takes its value.
    pub fn absorb(&mut self, later: RowUpdate) {
        self.version = later.version;
        self.at = later.at;
        self.status = later.status.or(self.status);
        self.scopes = later.scopes.or(self.scopes.take());
        self.tokens = later.tokens.or(self.tokens.take());
        self.status_reason = later.status_reason.or(self.status_reason.take());
        self.clear_state_hash |= later.clear_state_hash;
        self.refreshed_at = later.refreshed_at.or(self.refreshed_at.take());
    }
}

/// A batch's pending row updates, at most one per row, in the order of their first event.
#[derive(Default)]
pub(super) struct PendingUpdates {
    rows: Vec<RowUpdate>,
    /// Where each row's update is in `rows`.
    index: ByConnection<usize>,
}

impl PendingUpdates {
    pub fn holds(&self, workspace_id: &str, id: &str) -> bool {
        self.row_of(workspace_id, id).is_some()
    }

    fn row_of(&self, workspace_id: &str, id: &str) -> Option<usize> {
        self.index.get(workspace_id, id).copied()
    }

    /// `update` as the row's pending one, at the end of `rows`.
    fn push(&mut self, update: RowUpdate) {
        self.index
            .insert(&update.workspace_id, &update.id, self.rows.len());
        self.rows.push(update);
    }

    /// Adds `update`, folded into the row's pending one when there is one. Gives it back
    /// when it does not continue that one: the caller applies what is pending first.
    pub fn add(&mut self, update: RowUpdate) -> Option<RowUpdate> {
        match self.row_of(&update.workspace_id, &update.id) {
            Some(i) if self.rows[i].continued_by(&update) => self.rows[i].absorb(update),
            Some(_) => return Some(update),
            None => self.push(update),
        }
        None
    }

    pub fn take(&mut self) -> Vec<RowUpdate> {
        self.index.clear();
        std::mem::take(&mut self.rows)
    }

    /// What is pending (to be applied now), leaving `update` as the only pending one.
    pub fn restart(&mut self, update: RowUpdate) -> Vec<RowUpdate> {
        let pending = self.take();
        self.push(update);
        pending
    }
}

/// `UPDATE connections … FROM (VALUES …)` for `rows` rows (a power of two up to
/// `CONNECTION_UPDATES_PER_STATEMENT`), built once per size so each is prepared once per
/// connection. The `SET` list is the single-row update's, reading the row's values from `v`.
pub(super) fn connection_update_sql(rows: usize, placeholders: Placeholders) -> &'static str {
    static SQL: std::sync::OnceLock<PerSize> = std::sync::OnceLock::new();
    let build = |rows: usize, placeholders: Placeholders| -> String {
        let values = values_list(rows, CONNECTION_UPDATE_PARAMS, placeholders);
        match placeholders {
                    // SQLite names the columns of a VALUES list column1, column2, …
                    Placeholders::Anonymous => format!(
                        "UPDATE{} connections SET status = COALESCE(v.column1, status),
                         scopes = COALESCE(v.column2, scopes),
                         expires_at = CASE WHEN v.column3 THEN v.column4 ELSE expires_at END,
                         expires_at_unix = CASE WHEN v.column3 THEN v.column5 ELSE expires_at_unix END,
                         has_refresh_token = CASE WHEN v.column3 THEN v.column6 ELSE has_refresh_token END,
                         state_hash = CASE WHEN v.column7 THEN NULL ELSE state_hash END,
                         status_reason = CASE WHEN v.column8 THEN v.column9 ELSE status_reason END,
                         last_refreshed_at = COALESCE(v.column10, last_refreshed_at),
                         updated_at = v.column11, version = v.column12
                         FROM (VALUES {values}) AS v
                         WHERE connections.workspace_id = v.column14 AND connections.id = v.column15
                         AND connections.version = v.column13",
                        placeholders.or_fail()
                    ),
                    Placeholders::Numbered => format!(
                        "UPDATE connections AS c SET status = COALESCE(v.status, c.status),
                         scopes = COALESCE(v.scopes, c.scopes),
                         expires_at = CASE WHEN v.set_tokens THEN v.expires_at ELSE c.expires_at END,
                         expires_at_unix = CASE WHEN v.set_tokens THEN v.expires_at_unix ELSE c.expires_at_unix END,
                         has_refresh_token = CASE WHEN v.set_tokens THEN v.has_refresh_token ELSE c.has_refresh_token END,
                         state_hash = CASE WHEN v.clear_state_hash THEN NULL ELSE c.state_hash END,
                         status_reason = CASE WHEN v.set_reason THEN v.reason ELSE c.status_reason END,
                         last_refreshed_at = COALESCE(v.refreshed_at, c.last_refreshed_at),
                         updated_at = v.at, version = v.version
                         FROM (VALUES {values}) AS v (status, scopes, set_tokens, expires_at,
                             expires_at_unix, has_refresh_token, clear_state_hash, set_reason, reason,
                             refreshed_at, at, version, from_version, workspace_id, id)
                         WHERE c.workspace_id = v.workspace_id AND c.id = v.id
                         AND c.version = v.from_version"
                    ),
                }
    };
    SQL.get_or_init(|| PerSize::build(CONNECTION_UPDATES_PER_STATEMENT, build))
        .get(rows, placeholders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projector::op::ConnectionChange;

    fn op(version: i64, at: &str, change: ConnectionChange) -> ConnectionOp {
        ConnectionOp {
            workspace_id: "ws".into(),
            id: "conn".into(),
            version,
            at: at.into(),
            change,
        }
    }

    fn tokens(expires_at_unix: i64) -> TokenState {
        TokenState {
            expires_at: Some(format!("t{expires_at_unix}")),
            expires_at_unix: Some(expires_at_unix),
            has_refresh_token: true,
        }
    }

    #[test]
    fn a_refresh_round_folds_into_the_row_after_it() {
        // authorized (tokens, scopes, status), refresh started, refreshed, refresh failed
        let mut row = RowUpdate::of(
            10,
            op(
                2,
                "t2",
                ConnectionChange {
                    status: Some("active"),
                    scopes: Some("[\"a\"]".into()),
                    tokens: Some(tokens(100)),
                    status_reason: Some(None),
                    clear_state_hash: true,
                    ..Default::default()
                },
            ),
        );
        let fold = |row: &mut RowUpdate, next: RowUpdate| {
            assert!(row.continued_by(&next));
            row.absorb(next);
        };
        fold(
            &mut row,
            RowUpdate::of(11, op(3, "t3", ConnectionChange::default())),
        );
        let refreshed = ConnectionChange {
            scopes: Some("[\"b\"]".into()),
            tokens: Some(tokens(200)),
            status_reason: Some(None),
            refreshed: true,
            ..Default::default()
        };
        fold(&mut row, RowUpdate::of(12, op(4, "t4", refreshed)));
        let failed = ConnectionChange {
            status_reason: Some(Some("invalid_grant".into())),
            ..Default::default()
        };
        fold(&mut row, RowUpdate::of(13, op(5, "t5", failed)));
        assert_eq!(
            row,
            RowUpdate {
                position: 10,
                workspace_id: "ws".into(),
                id: "conn".into(),
                from_version: 1,
                version: 5,
                at: "t5".into(),
                status: Some("active"),
                scopes: Some("[\"b\"]".into()),
                tokens: Some(tokens(200)),
                status_reason: Some(Some("invalid_grant".into())),
                clear_state_hash: true,
                refreshed_at: Some("t4".into()),
            }
        );
    }

    #[test]
    fn only_the_next_version_of_the_same_row_is_folded() {
        let row = RowUpdate::of(1, op(2, "t2", ConnectionChange::default()));
        let skipped = RowUpdate::of(2, op(4, "t4", ConnectionChange::default()));
        assert!(!row.continued_by(&skipped));
        let mut other = RowUpdate::of(3, op(3, "t3", ConnectionChange::default()));
        other.id = "another".into();
        assert!(!row.continued_by(&other));
        let mut pending = PendingUpdates::default();
        assert_eq!(pending.add(row), None);
        assert_eq!(pending.add(other), None);
        assert_eq!(pending.add(skipped.clone()), Some(skipped.clone()));
        assert_eq!(
            pending.add(RowUpdate::of(4, op(3, "t3", ConnectionChange::default()))),
            None
        );
        assert!(pending.holds("ws", "conn") && pending.holds("ws", "another"));
        let rows = pending.take();
        assert_eq!(
            rows.iter()
                .map(|r| (r.id.as_str(), r.from_version, r.version))
                .collect::<Vec<_>>(),
            [("conn", 1, 3), ("another", 2, 3)]
        );
        assert!(!pending.holds("ws", "conn"));
        assert!(pending.restart(skipped).is_empty());
        assert!(pending.holds("ws", "conn"));
    }

    #[test]
    fn one_statement_per_power_of_two_with_every_row_bound() {
        for n in [1, 2, 4, 8, 64] {
            let sql = connection_update_sql(n, Placeholders::Numbered);
            let last = CONNECTION_UPDATE_PARAMS * n;
            assert!(sql.contains(&format!("${last})")), "{n}");
            assert!(!sql.contains(&format!("${}", last + 1)), "{n}");
            let sql = connection_update_sql(n, Placeholders::Anonymous);
            assert_eq!(
                sql.matches('?').count(),
                CONNECTION_UPDATE_PARAMS * n,
                "{n}"
            );
            assert!(!sql.contains('$'), "{n}");
        }
    }
}

//! A batch's new connection rows go in as multi-row `INSERT`s (one statement costs a round
//! trip; a rebuild inserts a row for about one event in fourteen): the statement per size
//! and backend, and each row's values in bind order.

use super::audit_insert::Placeholders;
use super::multi_row::{values_list, PerSize};

/// Most connection rows in one `INSERT` (12 parameters each).
pub(super) const CONNECTION_INSERTS_PER_STATEMENT: usize = 64;

/// Parameters of one row, in bind order: workspace_id, id, auth_config_id, user_id,
/// status, scopes, requested_scopes, redirect_url, state_hash, created_at, updated_at,
/// version.
const CONNECTION_INSERT_PARAMS: usize = 12;

/// `INSERT INTO connections … VALUES (…), (…)` for `rows` rows (a power of two up to
/// `CONNECTION_INSERTS_PER_STATEMENT`), built once per size so each is prepared once per
/// connection.
pub(super) fn connection_insert_sql(rows: usize, placeholders: Placeholders) -> &'static str {
    static SQL: std::sync::OnceLock<PerSize> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        PerSize::build(CONNECTION_INSERTS_PER_STATEMENT, |rows, placeholders| {
            format!(
                "INSERT{} INTO connections (workspace_id, id, auth_config_id, user_id, status, scopes,
                 requested_scopes, redirect_url, state_hash, created_at, updated_at, version)
                 VALUES {}",
                placeholders.or_fail(),
                values_list(rows, CONNECTION_INSERT_PARAMS, placeholders)
            )
        })
    })
    .get(rows, placeholders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_per_power_of_two_with_every_row_bound() {
        for n in [1, 2, 4, 64] {
            let sql = connection_insert_sql(n, Placeholders::Numbered);
            let last = CONNECTION_INSERT_PARAMS * n;
            assert!(sql.contains(&format!("${last})")), "{n}");
            assert!(!sql.contains(&format!("${}", last + 1)), "{n}");
            let sql = connection_insert_sql(n, Placeholders::Anonymous);
            assert_eq!(
                sql.matches('?').count(),
                CONNECTION_INSERT_PARAMS * n,
                "{n}"
            );
        }
    }
}

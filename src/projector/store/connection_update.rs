//! Consecutive updates of distinct connection rows go in as one multi-row `UPDATE … FROM
//! (VALUES …)` (one statement costs a round trip): the statement per size and backend.
//! Each row keeps the single-row update's guard (`version - 1`), so the statement changes
//! exactly as many rows as it has values, or one came out of order.

use super::audit_insert::Placeholders;

/// Most connection updates in one statement (14 parameters each).
pub(super) const CONNECTION_UPDATES_PER_STATEMENT: usize = 64;

/// Parameters of one row, in bind order: status, scopes, set_tokens, expires_at,
/// expires_at_unix, has_refresh_token, clear_state_hash, set_reason, reason, refreshed, at,
/// version, workspace_id, id.
pub(super) const CONNECTION_UPDATE_PARAMS: usize = 14;

/// `UPDATE connections … FROM (VALUES …)` for `rows` rows (a power of two up to
/// `CONNECTION_UPDATES_PER_STATEMENT`), built once per size so each is prepared once per
/// connection. The `SET` list is the single-row update's, reading the row's values from `v`.
pub(super) fn connection_update_sql(rows: usize, placeholders: Placeholders) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
    let build = |placeholders: Placeholders| -> Vec<String> {
        (0..=CONNECTION_UPDATES_PER_STATEMENT.trailing_zeros())
            .map(|exp| {
                let values: Vec<String> = (0..1usize << exp)
                    .map(|row| {
                        let p: Vec<String> = (1..=CONNECTION_UPDATE_PARAMS)
                            .map(|n| match placeholders {
                                Placeholders::Anonymous => "?".to_string(),
                                Placeholders::Numbered => {
                                    format!("${}", row * CONNECTION_UPDATE_PARAMS + n)
                                }
                            })
                            .collect();
                        format!("({})", p.join(", "))
                    })
                    .collect();
                let values = values.join(", ");
                match placeholders {
                    // SQLite names the columns of a VALUES list column1, column2, …
                    Placeholders::Anonymous => format!(
                        "UPDATE connections SET status = COALESCE(v.column1, status),
                         scopes = COALESCE(v.column2, scopes),
                         expires_at = CASE WHEN v.column3 THEN v.column4 ELSE expires_at END,
                         expires_at_unix = CASE WHEN v.column3 THEN v.column5 ELSE expires_at_unix END,
                         has_refresh_token = CASE WHEN v.column3 THEN v.column6 ELSE has_refresh_token END,
                         state_hash = CASE WHEN v.column7 THEN NULL ELSE state_hash END,
                         status_reason = CASE WHEN v.column8 THEN v.column9 ELSE status_reason END,
                         last_refreshed_at = CASE WHEN v.column10 THEN v.column11 ELSE last_refreshed_at END,
                         updated_at = v.column11, version = v.column12
                         FROM (VALUES {values}) AS v
                         WHERE connections.workspace_id = v.column13 AND connections.id = v.column14
                         AND connections.version = v.column12 - 1"
                    ),
                    Placeholders::Numbered => format!(
                        "UPDATE connections AS c SET status = COALESCE(v.status, c.status),
                         scopes = COALESCE(v.scopes, c.scopes),
                         expires_at = CASE WHEN v.set_tokens THEN v.expires_at ELSE c.expires_at END,
                         expires_at_unix = CASE WHEN v.set_tokens THEN v.expires_at_unix ELSE c.expires_at_unix END,
                         has_refresh_token = CASE WHEN v.set_tokens THEN v.has_refresh_token ELSE c.has_refresh_token END,
                         state_hash = CASE WHEN v.clear_state_hash THEN NULL ELSE c.state_hash END,
                         status_reason = CASE WHEN v.set_reason THEN v.reason ELSE c.status_reason END,
                         last_refreshed_at = CASE WHEN v.refreshed THEN v.at ELSE c.last_refreshed_at END,
                         updated_at = v.at, version = v.version
                         FROM (VALUES {values}) AS v (status, scopes, set_tokens, expires_at,
                             expires_at_unix, has_refresh_token, clear_state_hash, set_reason, reason,
                             refreshed, at, version, workspace_id, id)
                         WHERE c.workspace_id = v.workspace_id AND c.id = v.id
                         AND c.version = v.version - 1"
                    ),
                }
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

#[cfg(test)]
mod tests {
    use super::*;

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

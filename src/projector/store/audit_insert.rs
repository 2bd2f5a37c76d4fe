//! The audit rows of a batch go in as few multi-row `INSERT`s as their count allows (one
//! statement costs a round trip): the statements, their sizes and their bind order; a
//! rebuild's rows into PostgreSQL as one `COPY` per batch.

use crate::ledger::envelope::all_bytes;
use crate::projector::op::AuditRow;

/// Most audit rows in one `INSERT` (20 parameters each: far below either database's limit).
const AUDIT_ROWS_PER_INSERT: usize = 64;

/// The audit table's columns in the order a row's values are numbered (`$1` to `$20`).
const AUDIT_COLUMNS: &str = "position, event_id, workspace_id, aggregate_type, aggregate_id,
     aggregate_version, kind, actor_type, actor_id, occurred_at, key_id, occurred_at_unix,
     event_hash, user_id, auth_config_id, connection_id, outcome, reason, token_id, tool";

/// How a multi-row statement names its parameters. SQLite looks a numbered (named)
/// parameter up by walking a list, once per parameter bound: quadratic in a statement
/// with a thousand of them, so SQLite gets anonymous `?` (values bound again where they
/// repeat) and PostgreSQL `$n`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    Anonymous,
    Numbered,
}

impl Placeholders {
    /// The conflict clause of a multi-row `INSERT` or `UPDATE`: ` OR FAIL` on SQLite (the
    /// anonymous style), none on PostgreSQL. SQLite's default rule (`ABORT`) undoes a
    /// failing statement's earlier rows, so inside a transaction it first copies every page
    /// the statement changes into a statement journal; `FAIL` keeps them, and a batch that
    /// fails is rolled back whole anyway (the live batch's `ROLLBACK`, a rebuild's file
    /// discarded).
    pub(super) fn or_fail(self) -> &'static str {
        match self {
            Placeholders::Anonymous => " OR FAIL",
            Placeholders::Numbered => "",
        }
    }
}

/// The parameters of one audit row in the order they appear in its `VALUES (…)`: the
/// workspace (3) and the connection (16) also feed the lookups of a missing user and
/// auth config.
const AUDIT_ROW_PARAMS: [usize; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3, 16, 15, 3, 16, 16, 17, 18, 19, 20,
];

/// The parameters of one audit row whose user and auth config are given as they are
/// (`LookUp::No`): each once, in order.
const AUDIT_ROW_AS_GIVEN: [usize; 20] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
];

/// Whether a row's missing user and auth config are looked up in its connection's row by
/// the statement (`Yes`: the live projector), or were filled in by the caller (`No`: a
/// rebuild, which knows every connection it inserted).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum LookUp {
    Yes,
    No,
}

/// The values of one audit row in the order they are bound: as they appear in the row
/// (anonymous placeholders), or each once, `$1` to `$20` (numbered).
pub(super) fn audit_bind_order(placeholders: Placeholders, look_up: LookUp) -> &'static [usize] {
    match (placeholders, look_up) {
        (Placeholders::Anonymous, LookUp::Yes) => &AUDIT_ROW_PARAMS,
        _ => &AUDIT_ROW_AS_GIVEN,
    }
}

/// `INSERT INTO audit_events … VALUES (…), (…)` for `rows` rows. Built for the sizes
/// `exec_ops` uses (powers of two up to `AUDIT_ROWS_PER_INSERT`) and kept, so each is
/// prepared once per connection. A missing user or auth config is filled from the
/// connection's row: consecutive audit rows have no other write between them, so one
/// statement sees what one statement per row would have seen.
pub(super) fn audit_insert_sql(
    rows: usize,
    placeholders: Placeholders,
    look_up: LookUp,
) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 4]> = std::sync::OnceLock::new();
    let build = |placeholders: Placeholders, look_up: LookUp| -> Vec<String> {
        (0..=AUDIT_ROWS_PER_INSERT.trailing_zeros())
            .map(|exp| {
                let values: Vec<String> = (0..1usize << exp)
                    .map(|row| {
                        let place = |n: &usize| match placeholders {
                            Placeholders::Anonymous => "?".to_string(),
                            Placeholders::Numbered => format!("${}", row * 20 + n),
                        };
                        if look_up == LookUp::No {
                            let p: Vec<String> = AUDIT_ROW_AS_GIVEN.iter().map(place).collect();
                            return format!("({})", p.join(", "));
                        }
                        let p: Vec<String> = AUDIT_ROW_PARAMS.iter().map(place).collect();
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
                    "INSERT{} INTO audit_events ({AUDIT_COLUMNS}) VALUES {}",
                    placeholders.or_fail(),
                    values.join(", ")
                )
            })
            .collect()
    };
    let all = SQL.get_or_init(|| {
        [
            build(Placeholders::Anonymous, LookUp::Yes),
            build(Placeholders::Numbered, LookUp::Yes),
            build(Placeholders::Anonymous, LookUp::No),
            build(Placeholders::Numbered, LookUp::No),
        ]
    });
    let set = &all[usize::from(placeholders == Placeholders::Numbered)
        + 2 * usize::from(look_up == LookUp::No)];
    let exp = rows.max(1).ilog2() as usize;
    set.get(exp).map_or("", String::as_str)
}

/// A rebuild's audit rows into PostgreSQL: `COPY`, the bulk load (no statement parsed and
/// planned per 64 rows, no parameter bound one by one), its rows from `audit_copy_rows`.
pub(super) fn audit_copy_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!("COPY audit_events ({AUDIT_COLUMNS}) FROM STDIN"))
}

/// Audit rows as given (`LookUp::No`) in `COPY`'s text format: a line per row, its values
/// in `AUDIT_COLUMNS` order separated by tabs.
pub(super) fn audit_copy_rows<'a>(rows: impl ExactSizeIterator<Item = &'a AuditRow>) -> Vec<u8> {
    use std::fmt::Write as _;
    // A row of the audit suite's log takes about 430 bytes: one allocation per batch.
    let mut out = String::with_capacity(rows.len() * 512);
    for a in rows {
        let values: [CopyValue; 20] = [
            CopyValue::Int(a.position),
            CopyValue::Text(Some(&a.event_id)),
            CopyValue::Text(Some(&a.workspace_id)),
            CopyValue::Text(Some(&a.aggregate_type)),
            CopyValue::Text(Some(&a.aggregate_id)),
            CopyValue::Int(a.aggregate_version),
            CopyValue::Text(Some(&a.kind)),
            CopyValue::Text(Some(&a.actor_type)),
            CopyValue::Text(Some(&a.actor_id)),
            CopyValue::Text(Some(&a.occurred_at)),
            CopyValue::Text(Some(&a.key_id)),
            CopyValue::Int(a.occurred_at_unix),
            CopyValue::Text(Some(&a.event_hash)),
            CopyValue::Text(a.user_id.as_deref()),
            CopyValue::Text(a.auth_config_id.as_deref()),
            CopyValue::Text(a.connection_id.as_deref()),
            CopyValue::Text(a.outcome.as_deref()),
            CopyValue::Text(a.reason.as_deref()),
            CopyValue::Text(a.token_id.as_deref()),
            CopyValue::Text(a.tool.as_deref()),
        ];
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match value {
                // Written in place: digits and a sign need no escaping.
                CopyValue::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                CopyValue::Text(text) => copy_value(&mut out, text),
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// A column's value in a `COPY` row.
enum CopyValue<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

/// One value with what `COPY` text reads specially escaped (a backslash, the separators),
/// or `\N` for NULL. Most values have none of them: copied whole.
fn copy_value(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    // Most values are short ids: a `str::find` over a char array decodes every character
    // (6 % of a replay's samples), `memchr` per value costs its setup (5 %); the one pass
    // of `all_bytes`, under 4 %.
    let special = |b: u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r');
    if all_bytes(value, |b| !special(b)) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Splits `n` rows into the chunk sizes `audit_insert_sql` has (largest first).
pub(super) fn audit_chunks(n: usize) -> Vec<usize> {
    power_of_two_chunks(n, AUDIT_ROWS_PER_INSERT)
}

/// Splits `n` rows into powers of two up to `max` (a power of two), largest first: the
/// sizes a multi-row statement is built for.
pub(super) fn power_of_two_chunks(mut n: usize, max: usize) -> Vec<usize> {
    let mut chunks = Vec::new();
    while n > 0 {
        let size = if n >= max { max } else { 1 << n.ilog2() };
        chunks.push(size);
        n -= size;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_row_has_every_column_in_order_nulls_marked_and_separators_escaped() {
        let row = AuditRow {
            position: 7,
            event_id: "e".into(),
            workspace_id: "w".into(),
            aggregate_type: "tool_call".into(),
            aggregate_id: "a".into(),
            aggregate_version: 2,
            kind: "tool.completed".into(),
            actor_type: "api_key".into(),
            actor_id: "k".into(),
            occurred_at: "2026-12-06T07:00:00Z".into(),
            occurred_at_unix: 1_796_540_400,
            key_id: "key".into(),
            event_hash: "sha256:00".into(),
            user_id: None,
            auth_config_id: Some("ac".into()),
            connection_id: None,
            token_id: Some("t".into()),
            tool: Some("gmail.send".into()),
            outcome: Some("error".into()),
            reason: Some("upstream said:\tno\\N\r\nsecond line".into()),
        };
        let text = String::from_utf8(audit_copy_rows([&row, &row].into_iter())).expect("utf-8");
        let line =
            "7\te\tw\ttool_call\ta\t2\ttool.completed\tapi_key\tk\t2026-12-06T07:00:00Z\tkey\t\
                    1796540400\tsha256:00\t\\N\tac\t\\N\terror\t\
                    upstream said:\\tno\\\\N\\r\\nsecond line\tt\tgmail.send\n";
        assert_eq!(text, format!("{line}{line}"));
        let columns = AUDIT_COLUMNS.split(',').count();
        assert_eq!(line.trim_end().split('\t').count(), columns);
        assert!(audit_copy_sql().starts_with("COPY audit_events (position, event_id,"));
        assert!(audit_copy_sql().ends_with(", token_id, tool) FROM STDIN"));
    }

    proptest::proptest! {
        /// Escaped as COPY text reads it back, whatever the value holds.
        #[test]
        fn every_special_byte_is_escaped(value in "[a-z\\\\\t\n\r\u{e9}\u{1F600}]{0,40}") {
            let mut out = String::new();
            copy_value(&mut out, Some(&value));
            let expected: String = value
                .chars()
                .map(|c| match c {
                    '\\' => "\\\\".to_string(),
                    '\t' => "\\t".to_string(),
                    '\n' => "\\n".to_string(),
                    '\r' => "\\r".to_string(),
                    c => c.to_string(),
                })
                .collect();
            proptest::prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn audit_rows_go_in_power_of_two_chunks() {
        assert!(audit_chunks(0).is_empty());
        assert_eq!(audit_chunks(1), vec![1]);
        assert_eq!(audit_chunks(13), vec![8, 4, 1]);
        assert_eq!(audit_chunks(200), vec![64, 64, 64, 8]);
        for n in [1, 2, 4, 8, 64] {
            for look_up in [LookUp::Yes, LookUp::No] {
                let sql = audit_insert_sql(n, Placeholders::Numbered, look_up);
                assert!(sql.contains(&format!("${}", 20 * n)), "{n}");
                assert!(!sql.contains(&format!("${}", 20 * n + 1)), "{n}");
                assert_eq!(sql.contains("SELECT"), look_up == LookUp::Yes, "{n}");
            }
            let sql = audit_insert_sql(n, Placeholders::Anonymous, LookUp::Yes);
            assert_eq!(sql.matches('?').count(), 24 * n, "{n}");
            assert!(!sql.contains('$'), "{n}");
            let sql = audit_insert_sql(n, Placeholders::Anonymous, LookUp::No);
            assert_eq!(sql.matches('?').count(), 20 * n, "{n}");
            assert!(!sql.contains("SELECT"), "{n}");
        }
        // Binding follows the statement: anonymous values in the order the numbered
        // statement names them, numbered values once each in order.
        let named: Vec<usize> = audit_insert_sql(1, Placeholders::Numbered, LookUp::Yes)
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        assert_eq!(
            audit_bind_order(Placeholders::Anonymous, LookUp::Yes),
            named.as_slice()
        );
        for (placeholders, look_up) in [
            (Placeholders::Numbered, LookUp::Yes),
            (Placeholders::Numbered, LookUp::No),
            (Placeholders::Anonymous, LookUp::No),
        ] {
            assert_eq!(
                audit_bind_order(placeholders, look_up),
                (1..=20).collect::<Vec<usize>>().as_slice()
            );
        }
    }

    #[test]
    fn sqlite_multi_row_writes_fail_without_a_statement_journal_and_postgres_gets_no_such_clause() {
        use super::super::connection_insert::connection_insert_sql;
        use super::super::connection_update::connection_update_sql;
        // Every multi-row write of the projector, in one placeholder style.
        let writes = |n: usize, p: Placeholders| {
            [
                audit_insert_sql(n, p, LookUp::Yes),
                audit_insert_sql(n, p, LookUp::No),
                connection_insert_sql(n, p),
                connection_update_sql(n, p),
            ]
        };
        for n in [1, 2, 64] {
            for sql in writes(n, Placeholders::Anonymous) {
                let verb = sql.trim_start();
                assert!(
                    verb.starts_with("INSERT OR FAIL INTO") || verb.starts_with("UPDATE OR FAIL "),
                    "{n}: {sql}"
                );
            }
            for sql in writes(n, Placeholders::Numbered) {
                assert!(!sql.contains(" OR FAIL"), "{n}: {sql}");
            }
        }
    }
}

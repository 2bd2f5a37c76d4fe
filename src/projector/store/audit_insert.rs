//! The audit rows of a batch go in as few multi-row `INSERT`s as their count allows (one
//! statement costs a round trip): the statements, their sizes and their bind order.

/// Most audit rows in one `INSERT` (20 parameters each: far below either database's limit).
const AUDIT_ROWS_PER_INSERT: usize = 64;

/// How a multi-row statement names its parameters. SQLite looks a numbered (named)
/// parameter up by walking a list, once per parameter bound: quadratic in a statement
/// with a thousand of them, so SQLite gets anonymous `?` (values bound again where they
/// repeat) and PostgreSQL `$n`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    Anonymous,
    Numbered,
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
}

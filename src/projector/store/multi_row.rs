//! What the multi-row connection statements share: their `VALUES` lists, and one statement
//! per size (powers of two), built once so each is prepared once per connection.

use super::audit_insert::Placeholders;

/// `rows` rows of `params` parameters each: `(?, ?, …), (…)` (SQLite) or `($1, …),
/// ($params+1, …)` (PostgreSQL).
pub(super) fn values_list(rows: usize, params: usize, placeholders: Placeholders) -> String {
    let row = |row: usize| -> String {
        let p: Vec<String> = (1..=params)
            .map(|n| match placeholders {
                Placeholders::Anonymous => "?".to_string(),
                Placeholders::Numbered => format!("${}", row * params + n),
            })
            .collect();
        format!("({})", p.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// A statement for every power of two of rows up to a maximum, in both placeholder styles.
pub(super) struct PerSize([Vec<String>; 2]);

impl PerSize {
    /// `build(rows, placeholders)` for every power of two `rows` up to `max` (a power of two).
    pub fn build(max: usize, build: impl Fn(usize, Placeholders) -> String) -> PerSize {
        let sizes = |placeholders: Placeholders| -> Vec<String> {
            (0..=max.trailing_zeros())
                .map(|exp| build(1 << exp, placeholders))
                .collect()
        };
        PerSize([
            sizes(Placeholders::Anonymous),
            sizes(Placeholders::Numbered),
        ])
    }

    /// The statement for `rows` (a power of two the set was built for; empty otherwise).
    pub fn get(&self, rows: usize, placeholders: Placeholders) -> &str {
        let set = &self.0[usize::from(placeholders == Placeholders::Numbered)];
        let exp = rows.max(1).ilog2() as usize;
        set.get(exp).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_across_rows_or_anonymous() {
        assert_eq!(
            values_list(2, 3, Placeholders::Numbered),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(values_list(2, 2, Placeholders::Anonymous), "(?, ?), (?, ?)");
        let set = PerSize::build(4, |rows, _| rows.to_string());
        assert_eq!(set.get(1, Placeholders::Anonymous), "1");
        assert_eq!(set.get(4, Placeholders::Numbered), "4");
        assert_eq!(set.get(8, Placeholders::Numbered), "");
    }
}

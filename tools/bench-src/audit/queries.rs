//! Audit query latency: the store function `GET /v1/audit/events` calls
//! (`ProjectionStore::audit_events`), called directly with the filter the handler builds
//! (newest first, `limit + 1` rows to know whether there is a next page, the next page from
//! the keyset cursor of the 100th row). The handler's `audit.queried` append before each
//! query is not part of these timings.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use authledger::projector::store::{AuditFilter, ProjectionStore};
use authledger::projector::SqliteProjections;

/// Rows a page shows (the handler's default `limit`).
pub const PAGE: i64 = 100;

/// One filter shape: a first-page filter per target (user, connection, window, ...).
pub struct Shape {
    pub name: String,
    pub first: Vec<AuditFilter>,
}

#[derive(Default)]
pub struct ShapeStats {
    pub first: Vec<Duration>,
    pub cursor: Vec<Duration>,
    pub rows_first: u64,
    pub rows_cursor: u64,
}

/// What the handler's `filter_of` makes of `?order=desc&limit=100` (the defaults).
fn base() -> AuditFilter {
    AuditFilter {
        descending: true,
        limit: PAGE + 1,
        ..Default::default()
    }
}

/// Facts of the workspace the queries run against, read from the (SQLite) audit view.
pub struct Targets {
    pub rows: i64,
    pub users: Vec<String>,
    pub users_total: usize,
    pub connections: Vec<String>,
    pub min_unix: i64,
    pub max_unix: i64,
}

pub async fn targets(store: &SqliteProjections, ws: &str) -> anyhow::Result<Targets> {
    let pool = store.pool();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE workspace_id = $1")
        .bind(ws)
        .fetch_one(pool)
        .await
        .context("count rows")?;
    let users: Vec<(String, i64)> = sqlx::query_as(
        "SELECT user_id, COUNT(*) FROM audit_events WHERE workspace_id = $1 AND user_id IS NOT NULL
         GROUP BY user_id",
    )
    .bind(ws)
    .fetch_all(pool)
    .await
    .context("users")?;
    let users_total = users.len();
    // Users with a second page, so every user query has a cursor page too.
    let mut paged: Vec<String> = users
        .iter()
        .filter(|(_, n)| *n > PAGE)
        .map(|(u, _)| u.clone())
        .collect();
    if paged.is_empty() {
        paged = users.into_iter().map(|(u, _)| u).collect();
    }
    let connections: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT connection_id FROM audit_events WHERE workspace_id = $1
         AND connection_id IS NOT NULL",
    )
    .bind(ws)
    .fetch_all(pool)
    .await
    .context("connections")?;
    let (min_unix, max_unix): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT MIN(occurred_at_unix), MAX(occurred_at_unix) FROM audit_events WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_one(pool)
    .await
    .context("time bounds")?;
    Ok(Targets {
        rows,
        users: paged,
        users_total,
        connections,
        min_unix: min_unix.unwrap_or(0),
        max_unix: max_unix.unwrap_or(0),
    })
}

/// `n` queries per shape, targets drawn with a fixed seed (the same for every backend).
pub fn shapes(t: &Targets, n: usize, seed: u64) -> Vec<Shape> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pick = |v: &[String]| -> Vec<String> {
        (0..n).filter_map(|_| v.choose(&mut rng).cloned()).collect()
    };
    let users = pick(&t.users);
    let conns = pick(&t.connections);
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let day = 86_400;
    let windows: Vec<i64> = (0..n)
        .map(|_| rng.gen_range(t.min_unix..=(t.max_unix - day).max(t.min_unix)))
        .collect();
    vec![
        Shape {
            name: "kind prefix `connection.`".into(),
            first: (0..n)
                .map(|_| AuditFilter {
                    kind_prefix: Some("connection.".into()),
                    ..base()
                })
                .collect(),
        },
        Shape {
            name: "user_id (users with > 100 events)".into(),
            first: users
                .into_iter()
                .map(|u| AuditFilter {
                    user_id: Some(u),
                    ..base()
                })
                .collect(),
        },
        Shape {
            name: "connection_id".into(),
            first: conns
                .into_iter()
                .map(|c| AuditFilter {
                    connection_id: Some(c),
                    ..base()
                })
                .collect(),
        },
        Shape {
            name: "time range (24 h window)".into(),
            first: windows
                .into_iter()
                .map(|from| AuditFilter {
                    from_unix: Some(from),
                    to_unix: Some(from + day),
                    ..base()
                })
                .collect(),
        },
        Shape {
            name: "outcome (`failure` / `denied`)".into(),
            first: (0..n)
                .map(|i| AuditFilter {
                    outcome: Some(if i % 2 == 0 { "failure" } else { "denied" }.into()),
                    ..base()
                })
                .collect(),
        },
    ]
}

/// Runs the shapes round-robin (query i of every shape, then i + 1, ...), one query at a
/// time: each first page, then its cursor page when there is one. The first `warmup`
/// queries of each shape are run but not recorded.
pub async fn measure(
    store: &dyn ProjectionStore,
    ws: &str,
    shapes: &[Shape],
    warmup: usize,
) -> anyhow::Result<Vec<ShapeStats>> {
    let mut stats: Vec<ShapeStats> = shapes.iter().map(|_| ShapeStats::default()).collect();
    let rounds = shapes.iter().map(|s| s.first.len()).max().unwrap_or(0);
    for i in 0..rounds + warmup {
        for (shape, st) in shapes.iter().zip(stats.iter_mut()) {
            let Some(f) = shape
                .first
                .get(i.checked_sub(warmup).unwrap_or(i) % shape.first.len().max(1))
            else {
                continue;
            };
            let record = i >= warmup;
            let t0 = Instant::now();
            let rows = store
                .audit_events(ws, f)
                .await
                .with_context(|| format!("query {}", shape.name))?;
            let took = t0.elapsed();
            if record {
                st.first.push(took);
                st.rows_first += rows.len().min(PAGE as usize) as u64;
            }
            // The handler's next_cursor: the position of the last row shown.
            if rows.len() > PAGE as usize {
                let mut next = f.clone();
                next.cursor_position = rows.get(PAGE as usize - 1).map(|r| r.position);
                let t0 = Instant::now();
                let rows = store
                    .audit_events(ws, &next)
                    .await
                    .with_context(|| format!("cursor query {}", shape.name))?;
                let took = t0.elapsed();
                if record {
                    st.cursor.push(took);
                    st.rows_cursor += rows.len().min(PAGE as usize) as u64;
                }
            }
        }
    }
    for st in &mut stats {
        st.first.sort_unstable();
        st.cursor.sort_unstable();
    }
    Ok(stats)
}

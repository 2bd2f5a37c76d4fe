//! The write side: applies batches of events in order, once each, even with several
//! instances. Each batch runs in one transaction that also moves the projection's offset,
//! so a crash leaves offset and rows consistent: on PostgreSQL the offset row is locked
//! first; on SQLite the batch goes whole to the writer thread (`sqlite_batch`), whose
//! transaction holds the file's write lock from its start, and the offset is checked where
//! it is set.

use super::audit_insert::{
    audit_bind_order, audit_chunks, audit_copy_rows, audit_copy_sql, audit_insert_sql,
    power_of_two_chunks, LookUp,
};
use super::connection_insert::CONNECTION_INSERTS_PER_STATEMENT;
use super::connection_update::{PendingUpdates, RowUpdate, CONNECTION_UPDATES_PER_STATEMENT};
use super::exec::{Exec, Stmt};
use super::rebuild::{
    read_ahead, rebuilt_tables, ConnectionOwners, Planning, READ_AHEAD, RESET_SQL,
};
use super::sqlite_batch::Applied;
use super::{db, PgProjections, ProjectionError, SqliteProjections, PROJECTION};

use crate::domain::Event;
use crate::ledger::envelope::open_envelope;
use crate::ledger::{EventLog, RecordedEvent};
use crate::projector::cache::Family;
use crate::projector::op::{AuditRow, ConnectionOp, Op};
use crate::projector::plan::plan;

#[async_trait::async_trait]
pub trait ProjectionWriter: Send + Sync {
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
        known: &[RecordedEvent],
    ) -> Result<u64, ProjectionError>;
    /// The position of the last applied event.
    async fn offset(&self) -> Result<u64, ProjectionError>;
    /// The last offset this instance saw applied (by its projector, or read by `offset`):
    /// read-your-writes waits on it instead of polling the database.
    fn applied(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The offset for a read-your-writes wait that was not woken (another instance may
    /// have applied the events): read from the database at most once per `every` by all of
    /// this instance's waiters together; the others get the offset this instance saw last.
    async fn poll_offset(&self, every: std::time::Duration) -> Result<u64, ProjectionError>;
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
}

/// Decodes the events of a batch into operations, outside any transaction. An event this
/// process sealed is planned from what it sealed; any other envelope is parsed once, its
/// payload moved into the typed event (the plan reads the body's other fields only).
pub(super) fn plan_batch(events: &[RecordedEvent]) -> Result<Vec<(u64, Vec<Op>)>, ProjectionError> {
    events
        .iter()
        .map(|rec| {
            let ops = match &rec.sealed.0 {
                Some(sealed) => {
                    let ops = plan(rec.position, &sealed.body, &sealed.event, &sealed.hash);
                    #[cfg(debug_assertions)]
                    same_as_the_bytes(rec, &ops)?;
                    ops
                }
                None => plan_from_bytes(rec)?,
            };
            Ok((rec.position, ops))
        })
        .collect()
}

fn plan_from_bytes(rec: &RecordedEvent) -> Result<Vec<Op>, ProjectionError> {
    let undecodable = |reason: String| ProjectionError::Undecodable {
        position: rec.position,
        reason,
    };
    let mut opened = open_envelope(&rec.envelope).map_err(|e| undecodable(e.to_string()))?;
    let payload = std::mem::take(&mut opened.body.payload);
    let event = Event::from_owned_parts(&opened.body.kind, payload)
        .map_err(|e| undecodable(e.to_string()))?;
    Ok(plan(rec.position, &opened.body, &event, &opened.hash))
}

/// Debug builds (every test) plan each sealed event from its bytes too: a replay must give
/// what the live projector wrote.
#[cfg(debug_assertions)]
fn same_as_the_bytes(rec: &RecordedEvent, ops: &[Op]) -> Result<(), ProjectionError> {
    let from_bytes = plan_from_bytes(rec)?;
    if from_bytes != ops {
        return Err(ProjectionError::Undecodable {
            position: rec.position,
            reason: format!("planned {ops:?} from what was sealed, {from_bytes:?} from its bytes"),
        });
    }
    Ok(())
}

/// Up to `limit` events after `offset`: from `known` when they continue it, else the log.
async fn events_after(
    offset: u64,
    log: &dyn EventLog,
    limit: usize,
    known: &[RecordedEvent],
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    match known.iter().position(|e| e.position > offset) {
        Some(i) if known[i].position == offset + 1 => {
            Ok(known[i..known.len().min(i + limit)].to_vec())
        }
        _ => Ok(log.read_from(offset + 1, limit).await?),
    }
}

/// A batch read and planned (without the lock) after `seen`, kept from `locked` on:
/// another instance may have applied some in between. `None` when what is left does not
/// continue `locked`.
fn continuing<T>(planned: Vec<(u64, T)>, seen: u64, locked: u64) -> Option<Vec<(u64, T)>> {
    if locked == seen {
        return Some(planned);
    }
    let rest: Vec<_> = planned
        .into_iter()
        .filter(|(position, _)| *position > locked)
        .collect();
    match rest.first() {
        Some((first, _)) if *first == locked + 1 => Some(rest),
        _ => None,
    }
}

/// What a batch has not yet written: rows that go in together, many per statement.
#[derive(Default)]
struct Pending {
    audits: Vec<(u64, AuditRow)>,
    inserts: Vec<(u64, ConnectionOp)>,
    updates: PendingUpdates,
}

impl Pending {
    /// Whether a pending audit row would look up the connection `insert` adds (its user or
    /// auth config missing): that row must go in before the connection's row exists, as it
    /// would one event at a time. No other pending audit row can tell the difference, so a
    /// batch of creates goes in as one multi-row `INSERT` per table.
    fn looks_up(&self, insert: &ConnectionOp) -> bool {
        self.audits.iter().any(|(_, row)| {
            (row.user_id.is_none() || row.auth_config_id.is_none())
                && row.connection_id.as_deref() == Some(insert.id.as_str())
                && row.workspace_id == insert.workspace_id
        })
    }
}

macro_rules! sql_writer {
    ($store:ident) => {
        impl $store {
            /// Runs one batch's planned ops in order, with as few statements as the rows
            /// allow (one statement costs a round trip): consecutive audit rows and new
            /// connection rows as multi-row `INSERT`s, the batch's connection updates folded
            /// (one per row) as multi-row `UPDATE`s. They may pass each other: a row is
            /// inserted before its updates and before the audit rows that follow its event
            /// (an audit row reads only what a connection's insert sets, its user and auth
            /// config, and the audit rows before the insert go in first when they look it
            /// up); everything pending goes in before any other op (`apply_before_op`: a
            /// rebuild keeps its connection rows to its end, its audit rows to the batch's
            /// end). A rebuild passes the `owners` of the connections it inserted so far:
            /// audit rows then get a missing user and auth config from it, as the
            /// statement's lookup would have found them, and go in without the lookups (on
            /// PostgreSQL as one `COPY`).
            /// A live batch's ops, then the offset moved from `from` to `last`: the cached
            /// families it changed, or `None` when the offset was not at `from` (the caller
            /// rolls back).
            pub(super) async fn apply_planned(
                tx: &mut impl Exec,
                planned: Vec<(u64, Vec<Op>)>,
                from: u64,
                last: u64,
            ) -> Result<Option<Vec<Family>>, ProjectionError> {
                let changed = Self::apply_ops(tx, planned).await?;
                Ok(Self::move_offset(tx, from, last).await?.then_some(changed))
            }

            /// A live batch's ops alone: the cached families they changed.
            async fn apply_ops(
                tx: &mut impl Exec,
                planned: Vec<(u64, Vec<Op>)>,
            ) -> Result<Vec<Family>, ProjectionError> {
                let mut changed = Vec::new();
                Self::exec_ops(tx, planned, &mut changed, None, &mut Pending::default()).await?;
                Ok(changed)
            }

            async fn exec_ops(
                tx: &mut impl Exec,
                planned: Vec<(u64, Vec<Op>)>,
                changed: &mut Vec<Family>,
                mut owners: Option<&mut ConnectionOwners>,
                pending: &mut Pending,
            ) -> Result<(), ProjectionError> {
                let look_up = if owners.is_some() { LookUp::No } else { LookUp::Yes };
                // An audit row per event, mostly: grown a row at a time, the rows would be
                // moved again at every doubling.
                pending.audits.reserve(planned.len());
                for (position, ops) in planned {
                    for op in ops {
                        if let Some(family) = op.family() {
                            if !changed.contains(&family) {
                                changed.push(family);
                            }
                        }
                        match op {
                            Op::Audit(mut row) => {
                                if let Some(owners) = owners.as_deref_mut() {
                                    owners.fill(&mut row);
                                }
                                pending.audits.push((position, row));
                            }
                            Op::Connection(update) if update.change.new.is_none() => {
                                let update = RowUpdate::of(position, update);
                                if let Some(update) = pending.updates.add(update) {
                                    // Not the row's next version: what is pending goes
                                    // first, so the guard names the event out of order.
                                    Self::insert_connections_in_order(tx, &mut pending.inserts)
                                        .await?;
                                    let earlier = pending.updates.restart(update);
                                    Self::update_connections_in_order(tx, earlier).await?;
                                }
                            }
                            Op::Connection(insert)
                                if !pending.updates.holds(&insert.workspace_id, &insert.id) =>
                            {
                                if let Some(owners) = owners.as_deref_mut() {
                                    owners.inserted(&insert);
                                }
                                if look_up == LookUp::Yes && pending.looks_up(&insert) {
                                    Self::insert_audits_in_order(tx, pending, look_up).await?;
                                }
                                pending.inserts.push((position, insert));
                            }
                            other => {
                                if let (Some(owners), Op::Connection(insert)) =
                                    (owners.as_deref_mut(), &other)
                                {
                                    owners.inserted(insert);
                                }
                                if matches!(other, Op::Connection(_)) {
                                    Self::apply_pending(tx, pending, look_up).await?;
                                } else {
                                    Self::apply_before_op(tx, pending, look_up).await?;
                                }
                                Self::exec_op(tx, other).await.map_err(|e| {
                                    ProjectionError::Undecodable {
                                        position,
                                        reason: e.to_string(),
                                    }
                                })?;
                            }
                        }
                    }
                }
                match look_up {
                    LookUp::Yes => Self::apply_pending(tx, pending, look_up).await,
                    LookUp::No => {
                        Self::insert_audits(tx, std::mem::take(&mut pending.audits), look_up).await
                    }
                }
            }

            /// What must be written before another op: everything pending in a live batch.
            /// A rebuild keeps its connection rows to its end, so each row is written once,
            /// its updates all folded, and its audit rows to the batch's end (no other op
            /// reads or writes either, and nothing reads them during a rebuild).
            async fn apply_before_op(
                tx: &mut impl Exec,
                pending: &mut Pending,
                look_up: LookUp,
            ) -> Result<(), ProjectionError> {
                match look_up {
                    LookUp::Yes => Self::apply_pending(tx, pending, look_up).await,
                    LookUp::No => Ok(()),
                }
            }

            /// Everything pending: new connection rows, then audit rows, then updates.
            async fn apply_pending(
                tx: &mut impl Exec,
                pending: &mut Pending,
                look_up: LookUp,
            ) -> Result<(), ProjectionError> {
                Self::insert_audits_in_order(tx, pending, look_up).await?;
                Self::update_connections_in_order(tx, pending.updates.take()).await
            }

            /// The pending audit rows, after the new connection rows before them. The audit
            /// rows of the events up to the first new row go first: when one of them cannot
            /// be written (an event applied twice), the error names the first such event.
            async fn insert_audits_in_order(
                tx: &mut impl Exec,
                pending: &mut Pending,
                look_up: LookUp,
            ) -> Result<(), ProjectionError> {
                if let Some(&(first_insert, _)) = pending.inserts.first() {
                    let before = pending.audits.partition_point(|(p, _)| *p <= first_insert);
                    let before: Vec<_> = pending.audits.drain(..before).collect();
                    Self::insert_audits(tx, before, look_up).await?;
                }
                Self::insert_connections_in_order(tx, &mut pending.inserts).await?;
                Self::insert_audits(tx, std::mem::take(&mut pending.audits), look_up).await
            }

            /// The pending new connection rows, as many per statement as their count allows;
            /// a failed statement names its first row's event.
            async fn insert_connections_in_order(
                tx: &mut impl Exec,
                inserts: &mut Vec<(u64, ConnectionOp)>,
            ) -> Result<(), ProjectionError> {
                let inserts = std::mem::take(inserts);
                let mut rest = inserts.as_slice();
                for size in power_of_two_chunks(rest.len(), CONNECTION_INSERTS_PER_STATEMENT) {
                    let (chunk, after) = rest.split_at(size);
                    rest = after;
                    let first = chunk.first().map_or(0, |(p, _)| *p);
                    let ops: Vec<&ConnectionOp> = chunk.iter().map(|(_, op)| op).collect();
                    Self::insert_connections(tx, &ops).await.map_err(|e| {
                        ProjectionError::Undecodable {
                            position: first,
                            reason: e.to_string(),
                        }
                    })?;
                }
                Ok(())
            }

            /// Updates distinct connection rows, as many per statement as their count
            /// allows; a row not at the version before its first update fails with that
            /// update's position.
            async fn update_connections_in_order(
                tx: &mut impl Exec,
                updates: Vec<RowUpdate>,
            ) -> Result<(), ProjectionError> {
                let mut rest = updates.as_slice();
                for size in power_of_two_chunks(rest.len(), CONNECTION_UPDATES_PER_STATEMENT) {
                    let (chunk, after) = rest.split_at(size);
                    rest = after;
                    let first = chunk.first().map_or(0, |row| row.position);
                    let done = Self::update_connections(tx, chunk).await.map_err(|e| {
                        ProjectionError::Undecodable {
                            position: first,
                            reason: e.to_string(),
                        }
                    })?;
                    if done != size as u64 {
                        return Err(Self::out_of_order_update(tx, chunk).await);
                    }
                }
                Ok(())
            }

            /// The first of `chunk`'s rows that is not at its new version now (the others
            /// were applied): its first update came out of order.
            async fn out_of_order_update(
                tx: &mut impl Exec,
                chunk: &[RowUpdate],
            ) -> ProjectionError {
                let mut position = chunk.first().map_or(0, |row| row.position);
                for row in chunk {
                    let version = tx
                        .int(
                            Stmt::new(
                                "SELECT version FROM connections WHERE workspace_id = $1 AND id = $2",
                            )
                            .bind(row.workspace_id.as_str())
                            .bind(row.id.as_str()),
                        )
                        .await;
                    if !matches!(version, Ok(Some(v)) if v == row.version) {
                        position = row.position;
                        break;
                    }
                }
                ProjectionError::Undecodable {
                    position,
                    reason: "connection change out of order".into(),
                }
            }

            /// Binds one audit row's values in `AUDIT_ROW_PARAMS` order (anonymous
            /// placeholders) or once each (numbered).
            pub(super) fn bind_audit(mut query: Stmt, a: &AuditRow, look_up: LookUp) -> Stmt {
                for n in audit_bind_order(Self::PLACEHOLDERS, look_up) {
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

            /// A rebuild's rows into PostgreSQL in one `COPY`; otherwise multi-row `INSERT`s.
            async fn insert_audits<E: Exec>(
                tx: &mut E,
                rows: Vec<(u64, AuditRow)>,
                look_up: LookUp,
            ) -> Result<(), ProjectionError> {
                if look_up == LookUp::No && E::COPIES && !rows.is_empty() {
                    let copied = audit_copy_rows(rows.iter().map(|(_, a)| a));
                    let copy = tx.copy_in(audit_copy_sql(), copied).await;
                    return copy.map(drop).map_err(|e| ProjectionError::Undecodable {
                        position: rows[0].0,
                        reason: e.to_string(),
                    });
                }
                let mut rows = rows.into_iter();
                for size in audit_chunks(rows.len()) {
                    let chunk: Vec<_> = rows.by_ref().take(size).collect();
                    let first = chunk.first().map_or(0, |(p, _)| *p);
                    let mut query = Stmt::new(audit_insert_sql(size, Self::PLACEHOLDERS, look_up));
                    for (_, a) in &chunk {
                        query = Self::bind_audit(query, a, look_up);
                    }
                    query
                        .run(tx)
                        .await
                        .map_err(|e| ProjectionError::Undecodable {
                            position: first,
                            reason: e.to_string(),
                        })?;
                }
                Ok(())
            }

            /// Builds the indexes `defer_indexes` dropped.
            async fn build_indexes(
                tx: &mut impl Exec,
                deferred: Vec<String>,
            ) -> Result<(), ProjectionError> {
                for sql in deferred {
                    Stmt::new(sql).run(tx).await.map_err(db)?;
                }
                Ok(())
            }

            /// Locks the offset row for the rest of `tx`; returns the offset.
            async fn lock_offset(
                tx: &mut impl Exec,
            ) -> Result<u64, ProjectionError> {
                let offset = tx
                    .int(Stmt::new(Self::LOCK_OFFSET).bind(PROJECTION))
                    .await
                    .map_err(db)?
                    .ok_or_else(|| ProjectionError::Misconfigured("no projection offset row".into()))?;
                Ok(u64::try_from(offset).unwrap_or(0))
            }

            /// Sets the offset from `from` to `last`; false (nothing changed) when it is
            /// not at `from`.
            async fn move_offset(
                tx: &mut impl Exec,
                from: u64,
                last: u64,
            ) -> Result<bool, ProjectionError> {
                let done = Stmt::new(
                    "UPDATE projection_offsets SET position = $1 WHERE name = $2 AND position = $3",
                )
                .bind(i64::try_from(last).unwrap_or(i64::MAX))
                .bind(PROJECTION)
                .bind(i64::try_from(from).unwrap_or(i64::MAX))
                .run(tx)
                .await
                .map_err(db)?;
                Ok(done == 1)
            }

            async fn set_offset(
                tx: &mut impl Exec,
                last: u64,
            ) -> Result<(), ProjectionError> {
                Stmt::new("UPDATE projection_offsets SET position = $1 WHERE name = $2")
                    .bind(i64::try_from(last).unwrap_or(i64::MAX))
                    .bind(PROJECTION)
                    .run(tx)
                    .await
                    .map_err(db)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl ProjectionWriter for $store {
            async fn apply_next(
                &self,
                log: &dyn EventLog,
                limit: usize,
                known: &[RecordedEvent],
            ) -> Result<u64, ProjectionError> {
                self.apply_batch(log, limit, known).await
            }

            async fn offset(&self) -> Result<u64, ProjectionError> {
                let p: i64 =
                    sqlx::query_scalar("SELECT position FROM projection_offsets WHERE name = $1")
                        .bind(PROJECTION)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db)?;
                let p = u64::try_from(p).unwrap_or(0);
                self.saw_offset(p);
                Ok(p)
            }

            async fn poll_offset(
                &self,
                every: std::time::Duration,
            ) -> Result<u64, ProjectionError> {
                if self.poll_due(every) {
                    return self.offset().await;
                }
                Ok(*self.applied.borrow())
            }

            fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
                self.applied.subscribe()
            }

            async fn reset(&self) -> Result<(), ProjectionError> {
                sqlx::raw_sql(RESET_SQL)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
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
                Self::lock_offset(&mut tx).await?;
                for statement in RESET_SQL
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    sqlx::query(statement).execute(&mut *tx).await.map_err(db)?;
                }
                let deferred = self.defer_indexes(&mut tx, &rebuilt_tables()).await?;
                // The log is read and planned ahead while the batch before is applied.
                let (planned, mut batches) = tokio::sync::mpsc::channel::<Planning>(READ_AHEAD);
                let apply = async {
                    let mut last = 0;
                    let mut applied = 0;
                    // The tables start empty: every connection is inserted in this rebuild.
                    let mut owners = ConnectionOwners::default();
                    // Connection rows (inserts and folded updates) wait for the end.
                    let mut pending = Pending::default();
                    while let Some(batch) = batches.recv().await {
                        let batch: Vec<(u64, Vec<Op>)> = batch.await.map_err(|e| {
                            ProjectionError::Database(format!("planning a batch failed: {e}"))
                        })??;
                        if let Some((position, _)) = batch.last() {
                            last = *position;
                        }
                        applied += batch.len() as u64;
                        let owners = Some(&mut owners);
                        Self::exec_ops(&mut tx, batch, &mut Vec::new(), owners, &mut pending)
                            .await?;
                        progress(applied);
                    }
                    Self::apply_pending(&mut tx, &mut pending, LookUp::No).await?;
                    Ok::<_, ProjectionError>((last, applied))
                };
                let (read, applied) = tokio::join!(read_ahead(log, until, planned), apply);
                let (last, applied) = applied?;
                read?;
                Self::build_indexes(&mut tx, deferred).await?;
                Self::set_offset(&mut tx, last).await?;
                tx.commit().await.map_err(db)?;
                self.cache.changed_all();
                self.announce(last);
                Ok(applied)
            }

            fn describe(&self) -> String {
                self.description.clone()
            }
        }
    };
}

sql_writer!(SqliteProjections);
sql_writer!(PgProjections);

/// Where the next batch starts: what this instance last applied when the subscription's
/// events continue it (no read of the offset first), else the stored offset.
/// `offset` is called only when needed (the store's `offset()` boxes its future).
async fn batch_start<F>(
    applied: &tokio::sync::watch::Sender<u64>,
    offset: impl FnOnce() -> F,
    known: &[RecordedEvent],
) -> Result<u64, ProjectionError>
where
    F: std::future::Future<Output = Result<u64, ProjectionError>>,
{
    let last_applied = *applied.borrow();
    match known.first() {
        Some(first) if first.position == last_applied + 1 => Ok(last_applied),
        _ => offset().await,
    }
}

impl SqliteProjections {
    /// The batch goes to the writer thread whole; the offset is checked there (the
    /// transaction holds the file's write lock from its start). When another process moved
    /// it, whether or not this batch's rows collided with its rows first, nothing is
    /// written and the batch is made again after a read of it.
    async fn apply_batch(
        &self,
        log: &dyn EventLog,
        limit: usize,
        mut known: &[RecordedEvent],
    ) -> Result<u64, ProjectionError> {
        let Some(writer) = &self.batch_writer else {
            return Err(ProjectionError::Misconfigured(
                "a file being rebuilt takes no batches".into(),
            ));
        };
        loop {
            let from = batch_start(&self.applied, || self.offset(), known).await?;
            let events = events_after(from, log, limit, known).await?;
            if events.is_empty() {
                return Ok(0);
            }
            let planned = plan_batch(&events)?;
            let last = planned.last().map_or(from, |(position, _)| *position);
            match writer.apply(planned, from, last).await {
                Ok(Applied::Done(changed)) => {
                    self.committed(changed, last);
                    return Ok(events.len() as u64);
                }
                Ok(Applied::Moved) => known = &[],
                Err(e) => return Err(e),
            }
        }
    }

    /// After a commit: stale cache entries go before the new offset is announced
    /// (read-your-writes).
    fn committed(&self, changed: Vec<Family>, last: u64) {
        for family in changed {
            self.cache.changed(family);
        }
        self.announce(last);
    }
}

impl PgProjections {
    /// The offset row is locked before anything is written: another instance's batch
    /// waits for this one, then finds the offset moved on. Usually the offset is where
    /// this instance last saw it: then one statement locks its row and moves it, and the
    /// batch's statements follow (one round trip fewer than locking, then moving).
    async fn apply_batch(
        &self,
        log: &dyn EventLog,
        limit: usize,
        known: &[RecordedEvent],
    ) -> Result<u64, ProjectionError> {
        // The log is read before the offset row is locked: a read can wait seconds (a
        // JetStream leader election), and the lock would hold every other instance's batch
        // that long.
        let seen = batch_start(&self.applied, || self.offset(), known).await?;
        let events = events_after(seen, log, limit, known).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let planned = plan_batch(&events)?;
        let last = planned.last().map_or(seen, |(position, _)| *position);
        let mut tx = self.begin().await.map_err(db)?;
        if Self::move_offset(&mut tx, seen, last).await? {
            let changed = Self::apply_ops(&mut tx, planned).await?;
            return self.commit_batch(tx, changed, last, events.len()).await;
        }
        // Another instance applied some of them: from where it left the offset.
        let offset = Self::lock_offset(&mut tx).await?;
        self.saw_offset(offset);
        let planned = match continuing(planned, seen, offset) {
            Some(planned) => planned,
            None => plan_batch(&log.read_from(offset + 1, limit).await?)?,
        };
        let Some((last, _)) = planned.last() else {
            return Ok(0);
        };
        let (last, count) = (*last, planned.len());
        let changed = Self::apply_planned(&mut tx, planned, offset, last)
            .await?
            .ok_or_else(|| {
                ProjectionError::Database(
                    "the projection offset moved while its row was locked".into(),
                )
            })?;
        self.commit_batch(tx, changed, last, count).await
    }

    /// Commits a batch that applied `count` events up to `last`; stale cache entries go
    /// before the new offset is announced (read-your-writes).
    async fn commit_batch(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Postgres>,
        changed: Vec<Family>,
        last: u64,
        count: usize,
    ) -> Result<u64, ProjectionError> {
        tx.commit().await.map_err(db)?;
        for family in changed {
            self.cache.changed(family);
        }
        self.announce(last);
        Ok(count as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(planned: Option<Vec<(u64, ())>>) -> Option<Vec<u64>> {
        planned.map(|p| p.iter().map(|(position, _)| *position).collect())
    }

    fn recorded(name: &str, sealed_as: &str) -> RecordedEvent {
        use crate::domain::workspace::WorkspaceCreated;
        use crate::ledger::log::{InProcess, Sealed};
        let created = |name: &str| {
            Event::WorkspaceCreated(WorkspaceCreated {
                name: name.to_string(),
            })
        };
        let key = crate::ledger::AggregateKey::new("ws1", "workspace", "ws1").expect("key");
        let (signed, _) = crate::ledger::writer::seal_event(
            &crate::ledger::Signer::generate(),
            &key,
            0,
            None,
            &crate::ledger::Actor::system("t"),
            &created(name),
            time::OffsetDateTime::now_utc(),
        )
        .expect("seal");
        let mut opened = open_envelope(&signed.envelope).expect("opens");
        opened.body.payload = serde_json::Value::Null;
        RecordedEvent {
            position: 1,
            key,
            version: Some(1),
            envelope: signed.envelope,
            sealed: InProcess(Some(std::sync::Arc::new(Sealed {
                body: opened.body,
                event: created(sealed_as),
                hash: opened.hash,
            }))),
        }
    }

    #[test]
    fn a_sealed_event_is_planned_as_its_bytes_plan_it() {
        let rec = recorded("Acme", "Acme");
        let from_sealed = plan_batch(std::slice::from_ref(&rec)).expect("planned");
        let read_back = RecordedEvent {
            sealed: Default::default(),
            ..rec
        };
        assert_eq!(from_sealed, plan_batch(&[read_back]).expect("planned"));
    }

    #[cfg(debug_assertions)]
    #[test]
    fn a_debug_build_refuses_a_sealed_event_its_bytes_contradict() {
        match plan_batch(&[recorded("Acme", "Other")]) {
            Err(ProjectionError::Undecodable {
                position: 1,
                reason,
            }) => {
                assert!(reason.contains("from its bytes"), "{reason}");
            }
            other => panic!("expected the difference refused, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_planned_without_the_lock_is_kept_only_where_it_continues_the_locked_offset() {
        let read = || (5..=8).map(|position| (position, ())).collect::<Vec<_>>();
        assert_eq!(positions(continuing(read(), 4, 4)), Some(vec![5, 6, 7, 8]));
        // Another instance applied 5 and 6 meanwhile.
        assert_eq!(positions(continuing(read(), 4, 6)), Some(vec![7, 8]));
        // ... or all of them, or more: read again under the lock.
        assert_eq!(positions(continuing(read(), 4, 8)), None);
        assert_eq!(positions(continuing(read(), 4, 9)), None);
        // The projections were reset meanwhile.
        assert_eq!(positions(continuing(read(), 4, 0)), None);
    }
}

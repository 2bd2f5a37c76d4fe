//! How the write side's statements run. Each op builds a `Stmt` (its SQL and arguments, as
//! data) and runs it on an `Exec`: a `sqlx` transaction (PostgreSQL, and SQLite's rebuilds)
//! or `SyncSqlite`, a `rusqlite` connection the SQLite writer thread owns, where a live
//! batch runs without a hand-off per statement (one to the thread and back per batch).

use std::borrow::Cow;
use std::future::Future;

/// One bound value, typed as the column it goes to (a PostgreSQL NULL needs its type).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A statement and its arguments: `$n` placeholders name the `n`th (on both backends), an
/// anonymous `?` takes the next one (SQLite only).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Stmt {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Stmt {
    pub(super) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    pub(super) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs on `tx`: how many rows it changed.
    pub(super) fn run<E: Exec>(
        self,
        tx: &mut E,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + '_ {
        tx.execute(self)
    }
}

/// Where statements run: inside the batch's transaction.
pub(super) trait Exec: Send {
    /// Runs `stmt`; how many rows it changed.
    fn execute(&mut self, stmt: Stmt) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    /// The first column of the first row, if any, as text.
    fn text(
        &mut self,
        stmt: Stmt,
    ) -> impl Future<Output = Result<Option<String>, sqlx::Error>> + Send;
    /// The first column of the first row, if any, as an integer.
    fn int(&mut self, stmt: Stmt) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;
    /// Whether `copy_in` loads rows here (PostgreSQL); elsewhere rows go in by statements.
    const COPIES: bool = false;
    /// Runs `statement`, a `COPY … FROM STDIN`, with `rows` in its text format: how many
    /// rows went in.
    fn copy_in(
        &mut self,
        statement: &str,
        rows: Vec<u8>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send {
        let _ = (statement, rows);
        async { Err(sqlx::Error::Protocol("COPY is PostgreSQL's".into())) }
    }
}

/// `query` with `args` bound in order.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}

macro_rules! sqlx_exec {
    ($db:ty $(, { $($copy:tt)* })?) => {
        impl Exec for sqlx::Transaction<'_, $db> {
            $($($copy)*)?

            async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
                let query = bind_all!(sqlx::query(&stmt.sql), stmt.args);
                Ok(query.execute(&mut **self).await?.rows_affected())
            }

            async fn text(&mut self, stmt: Stmt) -> Result<Option<String>, sqlx::Error> {
                let query = bind_all!(sqlx::query_scalar(&stmt.sql), stmt.args);
                Ok(query.fetch_optional(&mut **self).await?.flatten())
            }

            async fn int(&mut self, stmt: Stmt) -> Result<Option<i64>, sqlx::Error> {
                let query = bind_all!(sqlx::query_scalar(&stmt.sql), stmt.args);
                Ok(query.fetch_optional(&mut **self).await?.flatten())
            }
        }
    };
}

sqlx_exec!(sqlx::Sqlite);
sqlx_exec!(sqlx::Postgres, {
    const COPIES: bool = true;

    async fn copy_in(&mut self, statement: &str, rows: Vec<u8>) -> Result<u64, sqlx::Error> {
        let mut copy = (**self).copy_in_raw(statement).await?;
        if let Err(e) = copy.send(rows).await {
            // Ends the COPY so the connection is usable; the transaction fails with `e`.
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
        copy.finish().await
    }
});

/// A `rusqlite` connection inside a transaction its owner began; every call runs at once
/// (the futures never wait), so the writer thread drives them with `block_on`.
pub(super) struct SyncSqlite<'c>(pub(super) &'c mut rusqlite::Connection);

fn protocol(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

impl SyncSqlite<'_> {
    /// `stmt` prepared (cached) with its arguments bound: `$n` and `?n` by number, `?` in
    /// order, as `sqlx` binds them.
    fn bound<'s>(
        connection: &'s rusqlite::Connection,
        stmt: &Stmt,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'s>> {
        let mut prepared = connection.prepare_cached(&stmt.sql)?;
        let mut next = 0usize;
        for index in 1..=prepared.parameter_count() {
            let n = match prepared.parameter_name(index) {
                Some(name) => name[1..].parse::<usize>().map_or(next, |n| n - 1),
                None => next,
            };
            next = n + 1;
            let arg = stmt
                .args
                .get(n)
                .ok_or(rusqlite::Error::InvalidParameterCount(
                    n + 1,
                    stmt.args.len(),
                ))?;
            match arg {
                Arg::Text(v) => prepared.raw_bind_parameter(index, v)?,
                Arg::Int(v) => prepared.raw_bind_parameter(index, v)?,
                Arg::Bool(v) => prepared.raw_bind_parameter(index, v)?,
            }
        }
        Ok(prepared)
    }

    fn first<T: rusqlite::types::FromSql>(&self, stmt: &Stmt) -> rusqlite::Result<Option<T>> {
        let mut prepared = Self::bound(self.0, stmt)?;
        let mut rows = prepared.raw_query();
        match rows.next()? {
            Some(row) => row.get::<_, Option<T>>(0),
            None => Ok(None),
        }
    }
}

impl Exec for SyncSqlite<'_> {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        let mut prepared = Self::bound(self.0, &stmt).map_err(protocol)?;
        let changed = prepared.raw_execute().map_err(protocol)?;
        Ok(changed as u64)
    }

    async fn text(&mut self, stmt: Stmt) -> Result<Option<String>, sqlx::Error> {
        self.first(&stmt).map_err(protocol)
    }

    async fn int(&mut self, stmt: Stmt) -> Result<Option<i64>, sqlx::Error> {
        self.first(&stmt).map_err(protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn connection() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().expect("open");
        c.execute_batch("CREATE TABLE t (a TEXT, b INTEGER, c BOOLEAN)")
            .expect("table");
        c
    }

    #[test]
    fn numbered_placeholders_bind_by_number_in_any_order_and_anonymous_ones_in_order() {
        let mut c = connection();
        let mut exec = SyncSqlite(&mut c);
        let insert = Stmt::new("INSERT INTO t (c, a, b) VALUES ($3, $1, $2)")
            .bind("x")
            .bind(7i64)
            .bind(true);
        assert_eq!(block_on(exec.execute(insert)).expect("insert"), 1);
        let anonymous = Stmt::new("INSERT INTO t (a, b, c) VALUES (?, ?, ?)")
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(false);
        assert_eq!(block_on(exec.execute(anonymous)).expect("insert"), 1);
        let reused = Stmt::new("UPDATE t SET b = $2 WHERE a = $1 AND b = $2 - 5")
            .bind("x")
            .bind(12i64);
        assert_eq!(block_on(exec.execute(reused)).expect("update"), 1);
        let b = Stmt::new("SELECT b FROM t WHERE a = $1 AND c = $2")
            .bind("x")
            .bind(true);
        assert_eq!(block_on(exec.int(b)).expect("int"), Some(12));
        let a = Stmt::new("SELECT a FROM t WHERE c = $1").bind(false);
        assert_eq!(block_on(exec.text(a)).expect("null"), None);
        let none = Stmt::new("SELECT a FROM t WHERE b = $1").bind(99i64);
        assert_eq!(block_on(exec.text(none)).expect("no row"), None);
        let short = Stmt::new("SELECT a FROM t WHERE b = $2").bind(1i64);
        assert!(
            block_on(exec.text(short)).is_err(),
            "a missing argument is an error"
        );
    }
}

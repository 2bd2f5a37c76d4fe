//! SQLite file surgery for `replay` on the embedded projections: a rebuilt
//! `projections.db` is made one self-contained file (its WAL folded in) and renamed over the
//! live one under an exclusive lock, so readers never see a half-built projection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use super::{ProjectionError, ProjectionWriter as _, SqliteProjections};
use crate::ledger::EventLog;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("{0}")]
    File(String),
}

/// Embedded projections: builds `<data_dir>/projections.db.replay-<id>` (same migrations),
/// folds its WAL into the file, then renames it over `projections.db`. A failure leaves the
/// old projections as they were and removes the new file.
pub async fn rebuild_embedded_projections(
    data_dir: &Path,
    log: &dyn EventLog,
    until: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, ReplayError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        ReplayError::File(format!(
            "cannot create data dir {}: {e}",
            data_dir.display()
        ))
    })?;
    let live = data_dir.join("projections.db");
    let fresh = data_dir.join(format!("projections.db.replay-{}", Uuid::now_v7().simple()));
    let result = async {
        use sqlx::Connection as _;
        let store = SqliteProjections::open_for_rebuild(&fresh).await?;
        let rebuilt = store.rebuild(log, until, progress).await;
        store.close().await;
        let rebuilt = rebuilt?;
        keep_delivery_state(&fresh, &live).await?;
        // One self-contained file: no WAL may be left behind (it would not follow the rename).
        sqlite_leave_wal(&fresh, false)
            .await?
            .close()
            .await
            .map_err(sqlite_err(&fresh))?;
        for suffix in ["-wal", "-shm"] {
            if sqlite_sidecar(&fresh, suffix).exists() {
                return Err(ReplayError::File(format!(
                    "the rebuilt projections {} still have a {suffix} file",
                    fresh.display()
                )));
            }
        }
        std::fs::File::open(&fresh)
            .and_then(|f| f.sync_all())
            .map_err(|e| ReplayError::File(format!("cannot sync {}: {e}", fresh.display())))?;
        swap_in(&fresh, &live).await?;
        Ok(rebuilt)
    }
    .await;
    if result.is_err() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(sqlite_sidecar(&fresh, suffix));
        }
    }
    result
}

/// Tables beside the projections that are not rebuilt from the log: webhook delivery
/// cursors and attempts (`reads::webhooks`), the SIEM feed's cursor (`reads::siem`). The
/// rebuilt file takes them over, so a replay does not send every endpoint (or the SIEM) the
/// history again.
const DELIVERY_STATE: &[&str] = &["webhook_cursors", "webhook_deliveries", "siem_cursors"];

async fn keep_delivery_state(fresh: &Path, live: &Path) -> Result<(), ReplayError> {
    use sqlx::Connection as _;
    if !live.exists() {
        return Ok(());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(fresh)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(sqlite_err(fresh))?;
    sqlx::query("ATTACH DATABASE $1 AS live")
        .bind(live.display().to_string())
        .execute(&mut conn)
        .await
        .map_err(sqlite_err(live))?;
    for table in DELIVERY_STATE {
        // A file from before the table existed has nothing to keep.
        let present: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM live.sqlite_master WHERE type = 'table' AND name = $1",
        )
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .map_err(sqlite_err(live))?;
        if present > 0 {
            sqlx::query(&format!(
                "INSERT INTO main.{table} SELECT * FROM live.{table}"
            ))
            .execute(&mut conn)
            .await
            .map_err(sqlite_err(fresh))?;
        }
    }
    sqlx::query("DETACH DATABASE live")
        .execute(&mut conn)
        .await
        .map_err(sqlite_err(live))?;
    conn.close().await.map_err(sqlite_err(fresh))
}

fn sqlite_sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn sqlite_err(path: &Path) -> impl Fn(sqlx::Error) -> ReplayError + '_ {
    move |e| ReplayError::File(format!("projections {}: {e}", path.display()))
}

/// Opens one connection to an existing SQLite database and switches it from WAL to the
/// rollback journal: SQLite checkpoints the whole WAL into the file and deletes it. That
/// needs the only connection to the file, so it fails while another process has it open.
async fn sqlite_leave_wal(path: &Path, quick: bool) -> Result<sqlx::SqliteConnection, ReplayError> {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(if quick { 2 } else { 10 }));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(sqlite_err(path))?;
    let in_use = || {
        ReplayError::File(format!(
            "the projections {} are in use by another process: stop `authledger serve` on this data dir, then replay",
            path.display()
        ))
    };
    let mode: String = match sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut conn)
        .await
    {
        Ok(mode) => mode,
        Err(sqlx::Error::Database(e)) if e.message().contains("locked") => return Err(in_use()),
        Err(e) => return Err(sqlite_err(path)(e)),
    };
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use());
    }
    Ok(conn)
}

/// Renames `fresh` over `live`, holding an exclusive lock on the old file meanwhile so no
/// process reads or writes it during the swap. The old file's WAL is folded in and removed
/// first: a WAL left beside the path would be applied to the new file.
async fn swap_in(fresh: &Path, live: &Path) -> Result<(), ReplayError> {
    use sqlx::Connection as _;
    let rename = || {
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = sqlite_sidecar(live, suffix);
            if side.exists() {
                std::fs::remove_file(&side).map_err(|e| {
                    ReplayError::File(format!("cannot remove {}: {e}", side.display()))
                })?;
            }
        }
        std::fs::rename(fresh, live).map_err(|e| {
            ReplayError::File(format!(
                "cannot rename {} to {}: {e}",
                fresh.display(),
                live.display()
            ))
        })?;
        if let Some(dir) = live.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ReplayError::File(format!("cannot sync {}: {e}", dir.display())))?;
        }
        Ok::<(), ReplayError>(())
    };
    if !live.exists() {
        return rename();
    }
    let mut old = sqlite_leave_wal(live, true).await?;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut old)
        .await
        .map_err(sqlite_err(live))?;
    let renamed = rename();
    // The lock is on the old file, which the rename unlinked: release it either way.
    let _ = sqlx::query("ROLLBACK").execute(&mut old).await;
    let _ = old.close().await;
    renamed
}

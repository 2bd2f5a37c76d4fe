//! What only a rebuild (`replay`) needs beside the batch writer: the tables it empties and
//! refills, the log read and planned ahead of the batch being applied, and the owners of
//! the connections inserted so far (for the audit rows' lookups it does itself).

use super::by_connection::ByConnection;
use super::writer::plan_batch;
use super::ProjectionError;
use crate::ledger::EventLog;
use crate::projector::op::{AuditRow, ConnectionOp, Op};

/// Empties every projection: `reset`, and a rebuild before it refills them.
pub(super) const RESET_SQL: &str =
    "DELETE FROM audit_events; DELETE FROM api_keys; DELETE FROM workspaces;
     DELETE FROM auth_configs; DELETE FROM auth_config_versions; DELETE FROM connections;
     DELETE FROM workspace_tools; DELETE FROM gateways; DELETE FROM gateway_keys;
     DELETE FROM approvals; DELETE FROM members; DELETE FROM webhooks;
     DELETE FROM dynamic_credentials;
     UPDATE projection_offsets SET position = 0;";

/// The user and auth config of every connection a rebuild has inserted so far (by
/// workspace, then id): what an audit row's lookup in the connection's row would find,
/// those columns being set by the insert and never changed.
#[derive(Default)]
pub(super) struct ConnectionOwners(ByConnection<(String, String)>);

impl ConnectionOwners {
    pub(super) fn inserted(&mut self, op: &ConnectionOp) {
        if let Some(new) = &op.change.new {
            let owner = (new.user_id.clone(), new.auth_config_id.clone());
            self.0.insert(&op.workspace_id, &op.id, owner);
        }
    }

    /// A missing user and auth config of `row` from its connection, if inserted.
    pub(super) fn fill(&self, row: &mut AuditRow) {
        if row.user_id.is_some() && row.auth_config_id.is_some() {
            return;
        }
        let owner = row
            .connection_id
            .as_deref()
            .and_then(|id| self.0.get(&row.workspace_id, id));
        if let Some((user_id, auth_config_id)) = owner {
            row.user_id.get_or_insert_with(|| user_id.clone());
            row.auth_config_id
                .get_or_insert_with(|| auth_config_id.clone());
        }
    }
}

/// The tables `RESET_SQL` empties: those a rebuild refills.
pub(super) fn rebuilt_tables() -> Vec<&'static str> {
    RESET_SQL
        .split(';')
        .filter_map(|s| s.trim().strip_prefix("DELETE FROM "))
        .collect()
}

/// Events read from the log per round trip of a rebuild.
const REBUILD_BATCH: usize = 1024;
/// Batches of a rebuild read (and being planned) ahead of the one being applied.
pub(super) const READ_AHEAD: usize = 4;

/// A batch of a rebuild, planned on a blocking thread beside the one being applied.
pub(super) type Planning = tokio::task::JoinHandle<Result<Vec<(u64, Vec<Op>)>, ProjectionError>>;

/// Reads the log at positions `1..=until` (`read_range`) in pages, each planned on a blocking thread as
/// soon as it is read, and sends them in order. Stops at the first failure (also sent: the
/// rebuild fails with it), when the log ends, or when the receiver is gone.
pub(super) async fn read_ahead(
    log: &dyn EventLog,
    until: u64,
    planned: tokio::sync::mpsc::Sender<Planning>,
) -> Result<(), ProjectionError> {
    let mut range = log.read_range(1, until).await?;
    loop {
        let events = range.next_page(REBUILD_BATCH).await?;
        if events.is_empty() {
            break;
        }
        let planning = tokio::task::spawn_blocking(move || plan_batch(&events));
        if planned.send(planning).await.is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_refills_every_table_reset_empties() {
        let tables = rebuilt_tables();
        assert_eq!(tables.len(), RESET_SQL.matches("DELETE FROM").count());
        for t in [
            "audit_events",
            "connections",
            "workspaces",
            "dynamic_credentials",
        ] {
            assert!(tables.contains(&t), "{t}");
        }
    }
}

//! Projection stores: one per SQL backend (the SQL schema lives in
//! `projections/<backend>/`). The write side (`writer`, `ops`, `audit_insert`) applies the
//! log in order, once per event even with several instances; the read side (`reads`) is
//! split by area, each area a trait the services read through. `ProjectionStore` is all of
//! them together: what `Arc<dyn ProjectionStore>` holders call.

mod audit_insert;
mod backends;
mod by_connection;
mod connection_insert;
mod connection_update;
mod exec;
mod multi_row;
mod ops;
pub mod reads;
mod rebuild;
mod sqlite_batch;
mod writer;

pub use backends::{PgProjections, SqliteProjections};
pub use reads::{
    AccessReads, AgentReads, ApiKeyRow, ApprovalRow, AuditEventRow, AuditFilter, AuditReads,
    AuthConfigReads, AuthConfigRow, AuthConfigVersionRow, ConnectionFilter, ConnectionReads,
    ConnectionRow, DynamicCredentialReads, DynamicCredentialRow, GatewayRow, MemberReads,
    MemberRow, SiemStore, WebhookStore, WorkspaceRow,
};
pub use writer::ProjectionWriter;

use crate::ledger::LogError;

pub const PROJECTION: &str = "state";
/// Every projection `replay --projection` can rebuild.
pub const PROJECTIONS: &[&str] = &[PROJECTION];

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("projection database unavailable: {0}")]
    Database(String),
    #[error("projection database misconfigured: {0}")]
    Misconfigured(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("event at position {position} cannot be projected: {reason}")]
    Undecodable { position: u64, reason: String },
}

fn db(e: sqlx::Error) -> ProjectionError {
    ProjectionError::Database(e.to_string())
}

/// The write side and every area's reads of one backend.
pub trait ProjectionStore:
    ProjectionWriter
    + AccessReads
    + AgentReads
    + AuditReads
    + AuthConfigReads
    + ConnectionReads
    + DynamicCredentialReads
    + MemberReads
    + SiemStore
    + WebhookStore
    + Send
    + Sync
    + 'static
{
}

impl<T> ProjectionStore for T where
    T: ProjectionWriter
        + AccessReads
        + AgentReads
        + AuditReads
        + AuthConfigReads
        + ConnectionReads
        + DynamicCredentialReads
        + MemberReads
        + SiemStore
        + WebhookStore
        + Send
        + Sync
        + 'static
{
}

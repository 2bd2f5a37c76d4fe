//! The read side, one file per area: each owns its rows, its SQL and the trait the
//! services read it through, implemented for both backends (the statements are the same;
//! `$n` placeholders work in SQLite too).

pub mod access;
pub mod agents;
pub mod audit;
pub mod auth_configs;
pub mod connections;
pub mod dynamic_credentials;
pub mod members;
pub mod siem;
pub mod webhooks;

pub use access::{AccessReads, ApiKeyRow, WorkspaceRow};
pub use agents::{AgentReads, ApprovalRow, GatewayRow};
pub use audit::{AuditEventRow, AuditFilter, AuditReads};
pub use auth_configs::{AuthConfigReads, AuthConfigRow, AuthConfigVersionRow};
pub use connections::{ConnectionFilter, ConnectionReads, ConnectionRow};
pub use dynamic_credentials::{DynamicCredentialReads, DynamicCredentialRow};
pub use members::{MemberReads, MemberRow};
pub use siem::{SiemCursorRow, SiemStore};
pub use webhooks::{CursorRow, DeliveryRow, Lease, Retry, WebhookRow, WebhookStore};

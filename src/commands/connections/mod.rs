//! Connection commands: the OAuth connect flow (initiate, callback), hosted connect links
//! for the other auth types (`hosted`), connections from
//! credentials, single-flight refresh, revocation at the provider (RFC 7009), deletion with
//! crypto-shredding. Secrets are sealed under the connection's own data key before any
//! event is decided; plaintext lives only in these modules' locals.

pub mod binding;
mod callback;
mod create;
pub mod hosted;
mod provider;
mod refresh;
mod revoke;
mod usage;

pub use callback::{callback, CallbackError, CallbackOutcome, CallbackQuery, InvalidState};
pub(crate) use create::shape;
pub use create::{create, CreateConnectionInput, CreatedConnection, PostgresCredentials};
pub use refresh::{refresh, refresh_after, RefreshOutcome};
pub use revoke::{delete, mark_needs_reconsent, revoke, revoke_own};
pub use usage::{credential_for_call, usable, UsableConnection, UsageError};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sealing::{self, SecretSlot};
use super::{wait_for_write, CommandError};
use crate::app::AppState;
use crate::domain::auth_config::{AuthConfig, AuthSettings, Lifecycle, OAuth2Settings};
use crate::domain::connection::{
    Connection, ConnectionCommand, ConnectionStatus, OAuthTokens, ProviderRevocation,
    RefreshTrigger,
};
use crate::domain::{
    ConnectionAuthorizationFailed, ConnectionAuthorized, ConnectionCreated, ConnectionExpired,
    ConnectionInitiated, ConnectionRefreshed, ConnectionRevoked, DomainError, RefreshFailed,
    RefreshStarted,
};
use crate::ledger::{Actor, LedgerError};
use crate::oauth::{self, ClientCredentials, OAuthError, TokenSet};

/// How long the `state` of a connect flow stays usable.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);
/// The path of the callback the ledger registers with providers.
pub const CALLBACK_PATH: &str = "/v1/oauth/callback";

/// Deployment settings of the connection machinery.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// `{public_url}/v1/oauth/callback` is the redirect URI registered with providers.
    pub public_url: String,
    /// Refresh this long before the access token expires.
    pub refresh_buffer: Duration,
    /// Attempts per refresh round on transient failures (5xx, timeouts).
    pub refresh_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base_delay: Duration,
    /// The provider call timeout (also bounds the refresh lease).
    pub provider_timeout: Duration,
    /// When the proactive refresh runs (`None`: never).
    pub refresh_schedule: Option<cron::Schedule>,
}

/// When the proactive refresh runs by default: every 30 seconds (six fields: seconds first).
pub const DEFAULT_REFRESH_SCHEDULE: &str = "0/30 * * * * *";

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            public_url: "http://127.0.0.1:8080".into(),
            refresh_buffer: Duration::from_secs(300),
            refresh_attempts: 3,
            retry_base_delay: Duration::from_millis(500),
            provider_timeout: Duration::from_secs(10),
            refresh_schedule: crate::config::parse_schedule(DEFAULT_REFRESH_SCHEDULE).ok(),
        }
    }
}

impl ConnectionSettings {
    pub fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.public_url.trim_end_matches('/'))
    }

    fn lease(&self) -> time::Duration {
        let per_attempt = self.provider_timeout + self.retry_base_delay * 8;
        let total = per_attempt * self.refresh_attempts.max(1) + Duration::from_secs(10);
        time::Duration::try_from(total).unwrap_or(time::Duration::minutes(5))
    }
}

/// In-process single flight: concurrent refreshes of one connection on this instance queue
/// here, so only the first reaches the log (across instances the aggregate version decides).
#[derive(Default)]
pub struct RefreshLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        // Forget locks nobody holds, so the map stays the size of what is in flight.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(key.to_string()).or_default().clone()
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CommandError {
    CommandError::Domain(DomainError::Invalid {
        field,
        reason: reason.into(),
    })
}

fn slot<'a>(workspace_id: &'a str, id: &'a str, field: &'a str) -> SecretSlot<'a> {
    SecretSlot {
        workspace_id,
        resource_type: "connection",
        resource_id: id,
        field,
    }
}

fn client_secret_slot<'a>(workspace_id: &'a str, auth_config_id: &'a str) -> SecretSlot<'a> {
    SecretSlot {
        workspace_id,
        resource_type: "auth_config",
        resource_id: auth_config_id,
        field: "client_secret",
    }
}

/// The state of an aggregate from the log; an id that cannot name one names none.
async fn load<A: crate::domain::Aggregate>(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<Option<A>, CommandError> {
    match state.ledger.load::<A>(workspace_id, id).await {
        Err(LedgerError::Envelope(_)) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(a) => Ok(Some(a)),
    }
}

/// The auth config a connection is made from: must exist in the workspace and be enabled.
async fn usable_auth_config(
    state: &AppState,
    workspace_id: &str,
    auth_config_id: &str,
) -> Result<AuthConfig, CommandError> {
    let config = load::<AuthConfig>(state, workspace_id, auth_config_id).await?;
    match config {
        Some(c) if c.lifecycle == Lifecycle::Enabled => Ok(c),
        Some(c) if c.lifecycle == Lifecycle::Disabled => Err(DomainError::Rejected(
            "the auth config is disabled: no new connections or token use".into(),
        )
        .into()),
        _ => Err(invalid(
            "auth_config_id",
            "no such auth config in this workspace",
        )),
    }
}

fn clip_text(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

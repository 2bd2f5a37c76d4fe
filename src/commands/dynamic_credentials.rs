//! Dynamic database credentials (issue 17): an agent asks for a short-lived database user
//! instead of holding the connection's password. The connection's stored credential is an
//! administrative one; the auth config (`dynamic_credentials` of a PostgreSQL or MySQL
//! connector) caps the TTL and names the grant templates an agent may ask for.
//!
//! Issue: `credential.issued` is appended first (fail closed: no event, no user), then the
//! user is made with a random password, which is answered once and never stored. Drop (at
//! expiry by the scheduler, when the connection is revoked, or after a failed create):
//! `credential.drop_started` claims the drop at the credential's version (of several
//! instances one wins, others see the lease), the user is dropped, then
//! `credential.expired` or `credential.revoked`. A claim whose instance died lapses after
//! `DROP_LEASE` and is taken again on a later run, so the log decides, across restarts and
//! instances.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::agents::{self, AgentError};
use super::sealing::{self, SecretSlot};
use super::{wait_for_write, Caller, CommandError};
use crate::app::AppState;
use crate::connectors::dynamic_users::{self, NewUser};
use crate::connectors::{ConnectorError, Definition, Values};
use crate::domain::auth_config::{AuthConfig, AuthSettings, ConnectorSettings};
use crate::domain::connection::{Connection, ConnectionStatus};
use crate::domain::dynamic_credential::{
    DropReason, DynamicCredential, DynamicCredentialCommand, DynamicCredentialsPolicy, GrantRule,
};
use crate::domain::{CredentialIssued, DomainError};
use crate::ledger::{Actor, LedgerError};
use crate::scoped_token::TokenClaims;

/// How long a first drop claim holds before another run may take it over (each later
/// claim of the same credential holds twice as long, up to an hour).
pub const DROP_LEASE: Duration = Duration::from_secs(60);
/// Credentials dropped per scheduler run.
const BATCH: i64 = 200;

/// `POST /v1/connections/{id}/dynamic-credentials`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueInput {
    pub ttl_seconds: u64,
    /// Names of the auth config's grant templates.
    pub grants: Vec<String>,
}

/// A new database user, answered once.
pub struct Issued {
    pub id: String,
    pub username: String,
    pub password: SecretString,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub grants: Vec<String>,
    pub expires_at: time::OffsetDateTime,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CommandError {
    CommandError::Domain(DomainError::Invalid {
        field,
        reason: reason.into(),
    })
}

/// An auth config's dynamic-credential policy: only on drivers that make database users,
/// and well formed.
pub fn check_policy(
    definition: &Definition,
    policy: Option<&DynamicCredentialsPolicy>,
) -> Result<(), CommandError> {
    let Some(policy) = policy else {
        return Ok(());
    };
    if !dynamic_users::DRIVERS.contains(&definition.driver.as_str()) {
        return Err(invalid(
            "dynamic_credentials",
            format!(
                "only connectors of the {} drivers make dynamic credentials",
                dynamic_users::DRIVERS.join(" and ")
            ),
        ));
    }
    Ok(policy.check()?)
}

/// Makes a database user for the caller (an agent key, or a scoped token for this very
/// connection) within the auth config's limits, and answers its password once.
pub async fn issue(
    state: &AppState,
    caller: &Caller,
    token: Option<&TokenClaims>,
    id: &str,
    input: IssueInput,
) -> Result<Issued, AgentError> {
    let ws = &caller.workspace_id;
    agents::connection_in_scope(state, caller, id).await?;
    check_token(token, id)?;
    let usable = super::connections::usable(state, ws, id).await?;
    let (definition, connector, policy) = policy_of(&usable.config)?;
    let (ttl, grants, rules) = within_limits(policy, &input)?;
    let admin = administrative_values(state, ws, id, &usable.connection).await?;
    super::auth_configs::recheck_destinations(state, definition, &connector.settings).await?;

    let credential_id = Uuid::now_v7().to_string();
    let mut name = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut name);
    let username = format!("al_dyn_{}", hex::encode(name));
    let password = SecretString::from(Alphanumeric.sample_string(&mut rand::thread_rng(), 32));
    let now = state.clock.now();
    let expires_at = now.replace_nanosecond(0).unwrap_or(now)
        + time::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX));
    let issued = CredentialIssued {
        connection_id: id.to_string(),
        auth_config_id: usable.connection.auth_config_id.clone(),
        user_id: usable.connection.user_id.clone(),
        driver: definition.driver.clone(),
        username: username.clone(),
        grants: grants.clone(),
        ttl_seconds: ttl,
        expires_at,
        password_fingerprint: state.vault.fingerprint(password.expose_secret().as_bytes()),
    };
    let actor = caller.actor();
    let committed = state
        .ledger
        .create::<DynamicCredential>(
            ws,
            &credential_id,
            &actor,
            &DynamicCredentialCommand::Issue(issued),
        )
        .await?;
    let values = Values {
        settings: &connector.settings,
        credentials: &admin,
    };
    let user = NewUser {
        username: &username,
        password: &password,
        valid_until: expires_at,
        rules: &rules,
    };
    let made = (ws.as_str(), credential_id.as_str(), &actor);
    make_user(state, made, definition, &values, &user).await?;
    drop_unless_still_active(state, made, id).await?;
    wait_for_write(state, committed.position).await?;
    Ok(Issued {
        id: credential_id,
        username,
        password,
        host: connector.settings_str("host"),
        port: connector
            .settings
            .get("port")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default(),
        database: connector.settings_str("database"),
        grants,
        expires_at,
    })
}

/// A scoped token is one for this connection, and for no single tool or counted uses.
fn check_token(token: Option<&TokenClaims>, id: &str) -> Result<(), AgentError> {
    if let Some(claims) = token {
        if claims.connection_id != id {
            return Err(AgentError::TokenMismatch("connection"));
        }
        // A token for one tool, or for a counted number of uses, is not one for this.
        if claims.tool.is_some() || claims.max_uses.is_some() {
            return Err(AgentError::TokenMismatch("tool"));
        }
    }
    Ok(())
}

/// The TTL and grants asked for, within the auth config's policy: the TTL, the grant
/// names, and the rules they stand for.
fn within_limits(
    policy: &DynamicCredentialsPolicy,
    input: &IssueInput,
) -> Result<(u64, Vec<String>, Vec<GrantRule>), AgentError> {
    let ttl = input.ttl_seconds;
    if ttl == 0 || ttl > policy.max_ttl_seconds {
        return Err(invalid(
            "ttl_seconds",
            format!(
                "1 to {} seconds (the auth config's limit)",
                policy.max_ttl_seconds
            ),
        )
        .into());
    }
    let grants = granted(policy, &input.grants)?;
    let rules: Vec<GrantRule> = grants
        .iter()
        .filter_map(|g| policy.grants.get(g))
        .flatten()
        .cloned()
        .collect();
    Ok((ttl, grants, rules))
}

/// Makes the user in the database; on failure whatever part was made goes again (the log
/// says why) and the answer says what failed.
async fn make_user(
    state: &AppState,
    (ws, credential_id, actor): (&str, &str, &Actor),
    definition: &Definition,
    values: &Values<'_>,
    user: &NewUser<'_>,
) -> Result<(), AgentError> {
    let timeout = state.connections.provider_timeout;
    let Err(e) =
        dynamic_users::create(definition, values, timeout, &state.destinations, user).await
    else {
        return Ok(());
    };
    if let Err(d) = drop_one(state, ws, credential_id, DropReason::NotCreated, actor).await {
        tracing::warn!(credential = %credential_id, error = %d, "could not drop a dynamic user that failed to be made; the scheduler drops it at expiry");
    }
    Err(match e {
        ConnectorError::Failed(f) => {
            AgentError::CredentialUnavailable(format!("the database refused to make the user: {f}"))
        }
        ConnectorError::Refused(r) => invalid("host", r.to_string()).into(),
        e @ ConnectorError::NoDriver(_) => invalid("connector", e.to_string()).into(),
    })
}

/// A revocation that read the connection's live users before this one was recorded would
/// have missed it: look again, and drop it if the connection is no longer active.
async fn drop_unless_still_active(
    state: &AppState,
    (ws, credential_id, actor): (&str, &str, &Actor),
    id: &str,
) -> Result<(), AgentError> {
    let now_connection = state.ledger.load::<Connection>(ws, id).await?;
    if now_connection.status == Some(ConnectionStatus::Active) {
        return Ok(());
    }
    if let Err(d) = drop_one(
        state,
        ws,
        credential_id,
        DropReason::ConnectionRevoked,
        actor,
    )
    .await
    {
        tracing::warn!(credential = %credential_id, error = %d, "could not drop a dynamic user of a revoked connection");
    }
    let status = now_connection
        .status
        .map_or("deleted", ConnectionStatus::as_str);
    Err(AgentError::ConnectionInactive(status.to_string()))
}

trait SettingsStr {
    fn settings_str(&self, name: &str) -> String;
}

impl SettingsStr for ConnectorSettings {
    fn settings_str(&self, name: &str) -> String {
        self.settings
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// The connector and its settings, where its driver makes database users.
fn connector_of(
    config: &AuthConfig,
) -> Result<(&'static Definition, &ConnectorSettings), CommandError> {
    let not_enabled = || {
        invalid(
            "connection",
            "dynamic credentials are not enabled on this connection's auth config",
        )
    };
    let Some(AuthSettings::Connector(connector)) = &config.settings else {
        return Err(not_enabled());
    };
    let definition = crate::connectors::definition(&connector.connector)
        .filter(|d| dynamic_users::DRIVERS.contains(&d.driver.as_str()))
        .ok_or_else(not_enabled)?;
    Ok((definition, connector))
}

/// The connector, its settings and its dynamic-credential policy, or why there is none.
fn policy_of(
    config: &AuthConfig,
) -> Result<
    (
        &'static Definition,
        &ConnectorSettings,
        &DynamicCredentialsPolicy,
    ),
    CommandError,
> {
    let (definition, connector) = connector_of(config)?;
    let policy = connector.dynamic_credentials.as_ref().ok_or_else(|| {
        invalid(
            "connection",
            "dynamic credentials are not enabled on this connection's auth config",
        )
    })?;
    Ok((definition, connector, policy))
}

/// The asked grants, each one of the policy's, sorted and without repeats.
fn granted(
    policy: &DynamicCredentialsPolicy,
    asked: &[String],
) -> Result<Vec<String>, CommandError> {
    if asked.is_empty() || asked.len() > 16 {
        return Err(invalid(
            "grants",
            "name 1 to 16 of the auth config's grants",
        ));
    }
    if let Some(unknown) = asked.iter().find(|g| !policy.grants.contains_key(*g)) {
        let shown: String = unknown.chars().take(40).collect();
        return Err(invalid(
            "grants",
            format!(
                "{shown:?} is not among the auth config's grants ({})",
                policy.grants.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut grants = asked.to_vec();
    grants.sort();
    grants.dedup();
    Ok(grants)
}

/// The connection's administrative credential (its user and password), opened for one
/// operation.
async fn administrative_values(
    state: &AppState,
    ws: &str,
    connection_id: &str,
    connection: &Connection,
) -> Result<BTreeMap<String, serde_json::Value>, CommandError> {
    let sealed = connection
        .credentials
        .as_ref()
        .ok_or_else(|| invalid("connection", "the connection holds no credentials"))?;
    let slot = SecretSlot {
        workspace_id: ws,
        resource_type: "connection",
        resource_id: connection_id,
        field: "credentials",
    };
    let text = sealing::open_text(state, slot, sealed).await?;
    let text = zeroize::Zeroizing::new(text.expose_secret().to_string());
    serde_json::from_str(&text)
        .map_err(|_| invalid("connection", "stored credentials are not a JSON object"))
}

/// Why a drop did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("the database did not drop the user: {0}")]
    Connector(#[from] ConnectorError),
}

impl From<LedgerError> for DropError {
    fn from(e: LedgerError) -> Self {
        DropError::Command(e.into())
    }
}

/// Claims and drops one credential's user. `Ok(false)`: nothing to do here (not due,
/// already dropped, or another run holds the claim).
pub async fn drop_one(
    state: &AppState,
    ws: &str,
    credential_id: &str,
    reason: DropReason,
    actor: &Actor,
) -> Result<bool, DropError> {
    let credential = state
        .ledger
        .load::<DynamicCredential>(ws, credential_id)
        .await?;
    let Some(issued) = credential.issued.clone().filter(|_| credential.live()) else {
        return Ok(false);
    };
    // Everything the drop needs is at hand before it is claimed: a claim that could not
    // even start would only add an event.
    let connection = state
        .ledger
        .load::<Connection>(ws, &issued.connection_id)
        .await?;
    let config = state
        .ledger
        .load::<AuthConfig>(ws, &connection.auth_config_id)
        .await?;
    // Dropped even when the auth config no longer offers dynamic credentials.
    let (definition, connector) = connector_of(&config)?;
    let admin = administrative_values(state, ws, &issued.connection_id, &connection).await?;
    super::auth_configs::recheck_destinations(state, definition, &connector.settings).await?;
    let now = state.clock.now();
    // A claim whose drop failed (the database down) holds until its lease ends: each
    // further attempt waits twice as long, up to an hour, so an outage adds few events.
    let backoff = 2u32.saturating_pow(credential.drop_attempts.min(6));
    let lease = time::Duration::try_from(DROP_LEASE.saturating_mul(backoff))
        .unwrap_or(time::Duration::minutes(1))
        .min(time::Duration::hours(1));
    let claim = DynamicCredentialCommand::StartDrop {
        reason,
        now,
        lease_until: now + lease,
    };
    match state
        .ledger
        .execute::<DynamicCredential>(ws, credential_id, actor, &claim)
        .await
    {
        Ok(_) => {}
        Err(LedgerError::Domain(DomainError::Rejected(_) | DomainError::NotFound(_))) => {
            return Ok(false)
        }
        Err(e) => return Err(e.into()),
    }
    let values = Values {
        settings: &connector.settings,
        credentials: &admin,
    };
    dynamic_users::drop(
        definition,
        &values,
        state.connections.provider_timeout,
        &state.destinations,
        &issued.username,
    )
    .await?;
    let done = state
        .ledger
        .execute::<DynamicCredential>(
            ws,
            credential_id,
            actor,
            &DynamicCredentialCommand::FinishDrop,
        )
        .await?;
    wait_for_write(state, done.position).await?;
    Ok(true)
}

/// One scheduler run: drops every user past its expiry (any workspace). Every instance may
/// run it: each drop is claimed in the log first. Returns how many were dropped.
pub async fn expire_due(state: &AppState) -> usize {
    let now = state.clock.now().unix_timestamp();
    let due = match state.projections.dynamic_credentials_due(now, BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "the dynamic credential expiry cannot read the projections");
            return 0;
        }
    };
    let actor = Actor::system("dynamic-credential-expiry");
    let mut dropped = 0;
    for row in due {
        match drop_one(
            state,
            &row.workspace_id,
            &row.id,
            DropReason::Expired,
            &actor,
        )
        .await
        {
            Ok(true) => dropped += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(credential = %row.id, error = %e, "a dynamic user past its expiry was not dropped; the next run tries again")
            }
        }
    }
    dropped
}

/// After a connection was revoked: drops every user made from it that is still live.
/// Failures are logged (the scheduler drops the rest at their expiry).
pub async fn drop_all_of_connection(
    state: &AppState,
    ws: &str,
    connection_id: &str,
    actor: &Actor,
) -> usize {
    let live = match state
        .projections
        .live_dynamic_credentials_of(ws, connection_id)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(connection = %connection_id, error = %e, "cannot read the revoked connection's dynamic users; they are dropped at expiry");
            return 0;
        }
    };
    let mut dropped = 0;
    for row in live {
        match drop_one(state, ws, &row.id, DropReason::ConnectionRevoked, actor).await {
            Ok(true) => dropped += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(credential = %row.id, error = %e, "a revoked connection's dynamic user was not dropped; it is dropped at expiry")
            }
        }
    }
    dropped
}

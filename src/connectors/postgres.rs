//! The `postgres` connector: a connection test really connects and runs `SELECT 1`.
//!
//! The host goes through the destination policy like every outbound destination: a name
//! or an address (never a unix-socket directory), every address it resolves to checked,
//! and the connection made to a checked address (the name is not resolved again), except
//! with `ssl_mode=verify-full`, where the driver needs the name to check the server's
//! certificate (the policy has checked what it resolves to; TLS binds the connection to it).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use crate::domain::auth_config::PostgresSettings;
use crate::net::{DestinationError, Policy, Refused};

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("invalid ssl_mode {0}")]
    SslMode(String),
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Nothing usable answered: refused, timed out, not PostgreSQL, TLS failed. One
    /// message for all of them, so the test never tells an open port from a closed one.
    #[error("no PostgreSQL server could be reached at the host and port (within {0:?})")]
    Unreachable(Duration),
    /// The server's own error (authentication, unknown database; never the password).
    #[error("{0}")]
    Failed(String),
}

/// Connects with the given user and password, runs `SELECT 1`; returns the round trip.
pub async fn test(
    settings: &PostgresSettings,
    user: &str,
    password: &str,
    timeout: Duration,
    destinations: &Policy,
) -> Result<Duration, ConnectorError> {
    let ssl = PgSslMode::from_str(&settings.ssl_mode)
        .map_err(|_| ConnectorError::SslMode(settings.ssl_mode.clone()))?;
    let host = destinations.host(&settings.host)?;
    let started = Instant::now();
    let unreachable = ConnectorError::Unreachable(timeout);
    let addresses = match tokio::time::timeout(timeout, destinations.addresses(&host)).await {
        Err(_) | Ok(Err(DestinationError::Unreachable)) => return Err(unreachable),
        Ok(Err(DestinationError::Refused(r))) => return Err(r.into()),
        Ok(Ok(ips)) => ips,
    };
    let targets: Vec<String> = match (&host, ssl) {
        (url::Host::Domain(name), PgSslMode::VerifyFull) => vec![name.clone()],
        _ => addresses.iter().map(IpAddr::to_string).collect(),
    };
    let options = PgConnectOptions::new()
        .port(settings.port)
        .database(&settings.database)
        .username(user)
        .password(password)
        .ssl_mode(ssl)
        .application_name("authledger-connection-test")
        .disable_statement_logging();
    let attempt = async {
        let mut last = None;
        for target in &targets {
            match select_one(options.clone().host(target)).await {
                // A server answered: its verdict stands.
                Err(e @ sqlx::Error::Database(_)) => return Err(e),
                Err(e) => last = Some(e),
                Ok(one) => return Ok(one),
            }
        }
        Err(last.unwrap_or(sqlx::Error::PoolClosed))
    };
    match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), attempt).await {
        Err(_) => Err(unreachable),
        Ok(Err(sqlx::Error::Database(e))) => {
            let mut message = e.to_string();
            if !password.is_empty() {
                message = message.replace(password, "***");
            }
            Err(ConnectorError::Failed(message))
        }
        // Connection refused, reset, TLS or protocol errors: what answered (if anything)
        // is not said.
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "postgres connection test failed to connect");
            Err(unreachable)
        }
        Ok(Ok(1)) => Ok(started.elapsed()),
        Ok(Ok(other)) => Err(ConnectorError::Failed(format!("SELECT 1 answered {other}"))),
    }
}

async fn select_one(options: PgConnectOptions) -> Result<i32, sqlx::Error> {
    let mut conn = options.connect().await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(one)
}

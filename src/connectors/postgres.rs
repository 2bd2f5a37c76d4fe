//! The `postgres` connector: a connection test really connects and runs `SELECT 1`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use crate::domain::auth_config::PostgresSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("invalid ssl_mode {0}")]
    SslMode(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server's or driver's message (never the password).
    #[error("{0}")]
    Failed(String),
}

/// Connects with the given user and password, runs `SELECT 1`; returns the round trip.
pub async fn test(
    settings: &PostgresSettings,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<Duration, ConnectorError> {
    let ssl = PgSslMode::from_str(&settings.ssl_mode)
        .map_err(|_| ConnectorError::SslMode(settings.ssl_mode.clone()))?;
    let options = PgConnectOptions::new()
        .host(&settings.host)
        .port(settings.port)
        .database(&settings.database)
        .username(user)
        .password(password)
        .ssl_mode(ssl)
        .application_name("authledger-connection-test")
        .disable_statement_logging();
    let started = Instant::now();
    let attempt = async {
        let mut conn = options.connect().await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        conn.close().await?;
        Ok::<i32, sqlx::Error>(one)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectorError::Timeout(timeout)),
        Ok(Err(e)) => {
            let mut message = e.to_string();
            if !password.is_empty() {
                message = message.replace(password, "***");
            }
            Err(ConnectorError::Failed(message))
        }
        Ok(Ok(1)) => Ok(started.elapsed()),
        Ok(Ok(other)) => Err(ConnectorError::Failed(format!("SELECT 1 answered {other}"))),
    }
}

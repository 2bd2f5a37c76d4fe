//! The `postgres` driver (PostgreSQL and the services that speak its protocol): connect
//! with the SSL mode asked for, log in, `SELECT 1` (sqlx, rustls).
//!
//! The connection goes to an address the destination policy checked (the name is not
//! resolved again), except with `ssl_mode=verify-full`, where the driver needs the name to
//! check the server's certificate (the policy has checked what it resolves to; TLS binds
//! the connection to it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use super::{io_failure, Class, ConnectorError, Failure, Target, Values};
use crate::domain::auth_config::PostgresSettings;
use crate::net::Policy;

pub const FIELDS: &[&str] = &[
    "host",
    "port",
    "database",
    "ssl_mode",
    "ca_certificate",
    "user",
    "password",
];

pub(super) async fn test(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let ssl = match values.str("ssl_mode") {
        "disable" => PgSslMode::Disable,
        "prefer" => PgSslMode::Prefer,
        "require" => PgSslMode::Require,
        "verify-ca" => PgSslMode::VerifyCa,
        "verify-full" => PgSslMode::VerifyFull,
        other => {
            return Err(Failure::new(Class::Failed, format!("unknown ssl_mode {other}")).into())
        }
    };
    let mut options = PgConnectOptions::new()
        .port(target.port)
        .database(values.str("database"))
        .username(values.str("user"))
        .password(values.str("password"))
        .ssl_mode(ssl)
        .application_name("authledger-connection-test")
        .disable_statement_logging();
    if let Some(pem) = values.opt_str("ca_certificate") {
        options = options.ssl_root_cert_from_pem(pem.as_bytes().to_vec());
    }
    let targets: Vec<String> = match (&target.host, ssl) {
        (url::Host::Domain(name), PgSslMode::VerifyFull) => vec![name.clone()],
        _ => target.addresses.iter().map(ToString::to_string).collect(),
    };
    let mut last = Failure::new(Class::Unreachable, "the host has no address");
    for host in &targets {
        let attempt = tokio::time::timeout(timeout, select_one(options.clone().host(host)));
        match attempt.await {
            Err(_) => last = Failure::new(Class::Timeout, format!("no answer within {timeout:?}")),
            Ok(Ok(1)) => return Ok(()),
            Ok(Ok(other)) => {
                return Err(
                    Failure::new(Class::Failed, format!("SELECT 1 answered {other}")).into(),
                )
            }
            Ok(Err(e)) => {
                let failure = classify(&e);
                // A server answered: its verdict stands.
                if !matches!(failure.class, Class::Unreachable | Class::Timeout) {
                    return Err(failure.into());
                }
                last = failure;
            }
        }
    }
    Err(last.into())
}

async fn select_one(options: PgConnectOptions) -> Result<i32, sqlx::Error> {
    let mut conn = options.connect().await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(one)
}

fn classify(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::Database(d) => {
            let class = match d.code().as_deref() {
                Some("28P01") => Class::InvalidCredentials,
                // No pg_hba.conf entry for this user, database or address.
                Some("28000") => Class::PermissionDenied,
                Some("42501") => Class::PermissionDenied,
                Some("3D000") => Class::NotFound,
                _ => Class::Failed,
            };
            Failure::new(class, d.message())
        }
        sqlx::Error::Tls(t) => Failure::new(Class::TlsFailure, t.to_string()),
        sqlx::Error::Io(io) => io_failure(io, "PostgreSQL"),
        other => {
            tracing::debug!(error = %other, "postgres connection test: no PostgreSQL answer");
            Failure::new(Class::Unreachable, "no PostgreSQL server answered")
        }
    }
}

/// The legacy `postgres` auth type's settings as the `postgres` connector's values.
pub fn legacy_settings(p: &PostgresSettings) -> BTreeMap<String, Value> {
    [
        ("host", json!(p.host)),
        ("port", json!(p.port)),
        ("database", json!(p.database)),
        ("ssl_mode", json!(p.ssl_mode)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Tests a legacy `postgres` auth config (settings in the auth config, a user and its
/// password from the caller) with the `postgres` connector.
pub async fn test_legacy(
    p: &PostgresSettings,
    user: &str,
    password: &str,
    timeout: Duration,
    destinations: &std::sync::Arc<Policy>,
) -> Result<Duration, ConnectorError> {
    let definition =
        super::definition("postgres").ok_or_else(|| ConnectorError::NoDriver("postgres".into()))?;
    let settings = legacy_settings(p);
    let credentials: BTreeMap<String, Value> = [
        ("user".to_string(), json!(user)),
        ("password".to_string(), json!(password)),
    ]
    .into_iter()
    .collect();
    let values = Values {
        settings: &settings,
        credentials: &credentials,
    };
    super::test(definition, &values, timeout, destinations).await
}

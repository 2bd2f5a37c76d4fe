//! The `mysql` driver (MySQL, MariaDB and the services that speak their protocol): connect
//! with the SSL mode asked for, log in, `SELECT 1` (sqlx, rustls), to an address the
//! destination policy checked (by name only for `verify-full`, which checks the name).

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlSslMode};
use sqlx::{ConnectOptions, Connection};

use super::{io_failure, Class, ConnectorError, Failure, Target, Values};

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
        "disable" => MySqlSslMode::Disabled,
        "prefer" => MySqlSslMode::Preferred,
        "require" => MySqlSslMode::Required,
        "verify-ca" => MySqlSslMode::VerifyCa,
        "verify-full" => MySqlSslMode::VerifyIdentity,
        other => {
            return Err(Failure::new(Class::Failed, format!("unknown ssl_mode {other}")).into())
        }
    };
    let mut options = MySqlConnectOptions::new()
        .port(target.port)
        .database(values.str("database"))
        .username(values.str("user"))
        .password(values.str("password"))
        .ssl_mode(ssl)
        .disable_statement_logging();
    if let Some(pem) = values.opt_str("ca_certificate") {
        options = options.ssl_ca_from_pem(pem.as_bytes().to_vec());
    }
    let targets: Vec<String> = match (&target.host, ssl) {
        (url::Host::Domain(name), MySqlSslMode::VerifyIdentity) => vec![name.clone()],
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
                if !matches!(failure.class, Class::Unreachable | Class::Timeout) {
                    return Err(failure.into());
                }
                last = failure;
            }
        }
    }
    Err(last.into())
}

async fn select_one(options: MySqlConnectOptions) -> Result<i64, sqlx::Error> {
    let mut conn = options.connect().await?;
    let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(one)
}

fn classify(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::Database(d) => {
            let number = d
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            let class = match number {
                // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
                Some(1045 | 1698) => Class::InvalidCredentials,
                // ER_DBACCESS_DENIED_ERROR, ER_HOST_NOT_PRIVILEGED, ER_TABLEACCESS_DENIED_ERROR
                Some(1044 | 1130 | 1142) => Class::PermissionDenied,
                // ER_BAD_DB_ERROR
                Some(1049) => Class::NotFound,
                _ => Class::Failed,
            };
            Failure::new(class, d.message())
        }
        sqlx::Error::Tls(t) => Failure::new(Class::TlsFailure, t.to_string()),
        sqlx::Error::Io(io) => io_failure(io, "MySQL"),
        other => {
            tracing::debug!(error = %other, "mysql connection test: no MySQL answer");
            Failure::new(Class::Unreachable, "no MySQL server answered")
        }
    }
}

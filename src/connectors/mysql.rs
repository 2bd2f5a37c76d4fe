//! The `mysql` driver (MySQL, MariaDB and the services that speak their protocol): connect
//! with the SSL mode asked for, log in, `SELECT 1` (sqlx, rustls), to an address the
//! destination policy checked (by name only for `verify-full`, which checks the name).

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlSslMode};
use sqlx::{ConnectOptions, Connection, Executor as _};

use super::dynamic_users::NewUser;
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
    let conn = connect(values, &target, timeout).await?;
    let one = tokio::time::timeout(timeout, select_one(conn)).await;
    match one {
        Err(_) => Err(Failure::new(Class::Timeout, format!("no answer within {timeout:?}")).into()),
        Ok(Err(e)) => Err(classify(&e).into()),
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(other)) => {
            Err(Failure::new(Class::Failed, format!("SELECT 1 answered {other}")).into())
        }
    }
}

/// Logs in with the values' SSL mode, user and password at the target's checked addresses
/// in turn (by name only for verify-full), each attempt bounded by `timeout`. A server's
/// verdict stands; only unreachable or silent addresses are passed over.
async fn connect(
    values: &Values<'_>,
    target: &Target,
    timeout: Duration,
) -> Result<MySqlConnection, ConnectorError> {
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
        let options = options.clone().host(host);
        match tokio::time::timeout(timeout, options.connect()).await {
            Err(_) => last = Failure::new(Class::Timeout, format!("no answer within {timeout:?}")),
            Ok(Ok(conn)) => return Ok(conn),
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

/// Quotes a MySQL identifier (`` ` `` doubled).
pub(super) fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a MySQL string literal: `'` doubled, backslashes escaped (the default SQL mode
/// treats them as escapes).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The account a dynamic user is: `'name'@'%'`.
fn account(username: &str) -> String {
    format!("{}@'%'", quote_literal(username))
}

/// The statements that make a dynamic user (MySQL runs each on its own: a failure part way
/// is cleaned up by dropping the user).
pub(super) fn create_statements(user: &NewUser<'_>, database: &str) -> Vec<String> {
    let account = account(user.username);
    let mut statements = vec![format!(
        "CREATE USER {account} IDENTIFIED BY {}",
        quote_literal(user.password.expose_secret())
    )];
    for rule in user.rules {
        let schema = quote_identifier(rule.schema.as_deref().unwrap_or(database));
        let mut privileges = rule.privileges.clone();
        privileges.sort();
        privileges.dedup();
        let privileges = privileges
            .iter()
            .map(|p| p.as_sql())
            .collect::<Vec<_>>()
            .join(", ");
        if rule.tables.is_empty() {
            statements.push(format!("GRANT {privileges} ON {schema}.* TO {account}"));
        }
        for table in &rule.tables {
            statements.push(format!(
                "GRANT {privileges} ON {schema}.{} TO {account}",
                quote_identifier(table)
            ));
        }
    }
    statements
}

/// Makes the dynamic user with the administrative credential in `values`.
pub(super) async fn create_user(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
    user: &NewUser<'_>,
) -> Result<(), ConnectorError> {
    let statements = create_statements(user, values.str("database"));
    let conn = connect(values, &target, timeout).await?;
    finish(
        tokio::time::timeout(timeout, run_all(conn, statements)).await,
        timeout,
    )
}

// The session's work is boxed as `Send` here, where its types are concrete (sqlx's
// executor bounds are otherwise too general for the spawning task to prove `Send`).
fn run_all(mut conn: MySqlConnection, statements: Vec<String>) -> Session<()> {
    Box::pin(async move {
        for statement in &statements {
            conn.execute(statement.as_str()).await?;
        }
        conn.close().await
    })
}

type Session<T> = futures::future::BoxFuture<'static, Result<T, sqlx::Error>>;

/// Drops the dynamic user if it exists, ending its open sessions after.
pub(super) async fn drop_user(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
    username: &str,
) -> Result<(), ConnectorError> {
    let conn = connect(values, &target, timeout).await?;
    finish(
        tokio::time::timeout(timeout, drop_and_end(conn, username.to_string())).await,
        timeout,
    )
}

fn drop_and_end(conn: MySqlConnection, username: String) -> Session<()> {
    Box::pin(drop_and_end_now(conn, username))
}

async fn drop_and_end_now(mut conn: MySqlConnection, username: String) -> Result<(), sqlx::Error> {
    let drop = format!("DROP USER IF EXISTS {}", account(&username));
    conn.execute(drop.as_str()).await?;
    let sessions: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE USER = ?",
    )
    .bind(&username)
    .fetch_all(&mut conn)
    .await?;
    for id in sessions {
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let kill = format!("KILL CONNECTION {id}");
        // Gone already is fine.
        if let Err(e) = conn.execute(kill.as_str()).await {
            tracing::info!(error = %e, "could not end a dynamic user's session");
        }
    }
    conn.close().await
}

fn select_one(mut conn: MySqlConnection) -> Session<i64> {
    Box::pin(async move {
        let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        conn.close().await?;
        Ok(one)
    })
}

fn finish(
    outcome: Result<Result<(), sqlx::Error>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    match outcome {
        Err(_) => Err(Failure::new(Class::Timeout, format!("no answer within {timeout:?}")).into()),
        Ok(Err(e)) => Err(classify(&e).into()),
        Ok(Ok(())) => Ok(()),
    }
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

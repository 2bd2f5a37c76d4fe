//! The `postgres` driver (PostgreSQL and the services that speak its protocol): connect
//! with the SSL mode asked for, log in, `SELECT 1` (sqlx, rustls).
//!
//! The connection goes to an address the destination policy checked (the name is not
//! resolved again), except with `ssl_mode=verify-full`, where the driver needs the name to
//! check the server's certificate (the policy has checked what it resolves to; TLS binds
//! the connection to it).

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use super::dynamic_users::NewUser;
use super::{io_failure, Class, ConnectorError, Failure, Target, Values};
use crate::domain::auth_config::PostgresSettings;
use crate::domain::dynamic_credential::GrantRule;
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
    let one = run(
        values,
        &target,
        timeout,
        "authledger-connection-test",
        |mut conn| {
            Box::pin(async move {
                let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
                conn.close().await?;
                Ok(one)
            })
        },
    )
    .await?;
    if one != 1 {
        return Err(Failure::new(Class::Failed, format!("SELECT 1 answered {one}")).into());
    }
    Ok(())
}

/// What a session does once logged in.
type Work<T> =
    fn(
        PgConnection,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send>>;

/// Connects with the values' SSL mode, user and password to the target's checked
/// addresses in turn (by name only for verify-full) and runs `work` on the first session,
/// each attempt bounded by `timeout`. A server's verdict stands; only unreachable or silent
/// addresses are passed over.
async fn run<T>(
    values: &Values<'_>,
    target: &Target,
    timeout: Duration,
    application: &str,
    work: Work<T>,
) -> Result<T, ConnectorError> {
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
        .application_name(application)
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
        let options = options.clone().host(host);
        let attempt = tokio::time::timeout(timeout, async move {
            let conn = options.connect().await?;
            work(conn).await
        });
        match attempt.await {
            Err(_) => last = Failure::new(Class::Timeout, format!("no answer within {timeout:?}")),
            Ok(Ok(done)) => return Ok(done),
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

/// Quotes a PostgreSQL identifier (`"` doubled): names from the auth config or the ledger,
/// never interpolated as they are.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a PostgreSQL string literal (standard strings: `'` doubled).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// PostgreSQL's default SCRAM iteration count.
const SCRAM_ITERATIONS: u32 = 4096;

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64. PostgreSQL takes it
/// in place of a password and never sees the password itself.
pub(super) fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    type HmacSha256 = Hmac<Sha256>;
    let mac = |key: &[u8], data: &[&[u8]]| -> [u8; 32] {
        // HMAC takes a key of any length.
        let mut m = match HmacSha256::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes().into()
    };
    // Hi(password, salt, i): PBKDF2-HMAC-SHA256 with one output block.
    let mut u = mac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(password.as_bytes(), &[&u]);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = mac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = mac(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// The statements that make a dynamic user (one transaction: all or nothing).
pub(super) fn create_statements(user: &NewUser<'_>, database: &str) -> Vec<String> {
    let role = quote_identifier(user.username);
    let until = user
        .valid_until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // The server is sent the SCRAM verifier, never the password: statement logs and
    // `pg_stat_statements` see nothing a client could log in with.
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
    let verifier = scram_verifier(user.password.expose_secret(), &salt, SCRAM_ITERATIONS);
    let mut statements = vec![
        format!(
            "CREATE ROLE {role} LOGIN NOINHERIT PASSWORD {} VALID UNTIL {}",
            quote_literal(&verifier),
            quote_literal(&until)
        ),
        format!(
            "GRANT CONNECT ON DATABASE {} TO {role}",
            quote_identifier(database)
        ),
    ];
    for rule in user.rules {
        let schema = quote_identifier(rule.schema.as_deref().unwrap_or("public"));
        let privileges = privileges(rule);
        statements.push(format!("GRANT USAGE ON SCHEMA {schema} TO {role}"));
        if rule.tables.is_empty() {
            statements.push(format!(
                "GRANT {privileges} ON ALL TABLES IN SCHEMA {schema} TO {role}"
            ));
        }
        for table in &rule.tables {
            statements.push(format!(
                "GRANT {privileges} ON TABLE {schema}.{} TO {role}",
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
    run_statements(values, &target, timeout, statements, None).await
}

/// Drops the dynamic user if it exists: its sessions ended, what it owns and was granted in
/// the connector's database dropped, then the role.
pub(super) async fn drop_user(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
    username: &str,
) -> Result<(), ConnectorError> {
    let role = quote_identifier(username);
    let statements = vec![
        format!("DROP OWNED BY {role}"),
        format!("DROP ROLE IF EXISTS {role}"),
    ];
    run_statements(
        values,
        &target,
        timeout,
        statements,
        Some(username.to_string()),
    )
    .await
}

/// Runs `statements` in one transaction as the administrative user. With `dropping`, only
/// when that role exists (so a retried drop succeeds), after ending its sessions.
async fn run_statements(
    values: &Values<'_>,
    target: &Target,
    timeout: Duration,
    statements: Vec<String>,
    dropping: Option<String>,
) -> Result<(), ConnectorError> {
    let job = std::sync::Arc::new((statements, dropping));
    let conn = run(
        values,
        target,
        timeout,
        "authledger-dynamic-credentials",
        |conn| Box::pin(async move { Ok(conn) }),
    )
    .await?;
    let outcome = tokio::time::timeout(timeout, execute(conn, job)).await;
    match outcome {
        Err(_) => Err(Failure::new(Class::Timeout, format!("no answer within {timeout:?}")).into()),
        Ok(Err(e)) => Err(classify(&e).into()),
        Ok(Ok(())) => Ok(()),
    }
}

async fn execute(
    mut conn: PgConnection,
    job: std::sync::Arc<(Vec<String>, Option<String>)>,
) -> Result<(), sqlx::Error> {
    let (statements, dropping) = &*job;
    if let Some(role) = dropping {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&mut conn)
            .await?;
        if exists.is_none() {
            conn.close().await?;
            return Ok(());
        }
        // No new session, and the open ones end (allowed to superusers and members of
        // pg_signal_backend).
        let quoted = quote_identifier(role);
        sqlx::query(&format!("ALTER ROLE {quoted} NOLOGIN"))
            .execute(&mut conn)
            .await?;
        let ended = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        )
        .bind(role)
        .execute(&mut conn)
        .await;
        if let Err(e) = ended {
            tracing::info!(error = %e, "could not end a dynamic user's sessions");
        }
    }
    let mut tx = conn.begin().await?;
    for statement in statements {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    conn.close().await
}

fn privileges(rule: &GrantRule) -> String {
    let mut list = rule.privileges.clone();
    list.sort();
    list.dedup();
    list.iter()
        .map(|p| p.as_sql())
        .collect::<Vec<_>>()
        .join(", ")
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

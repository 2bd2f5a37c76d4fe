//! The `redis` driver (Redis and the servers that speak its protocol): connect to an address
//! the destination policy checked, over TLS when asked (the certificate checked against the
//! public roots or the auth config's CA, and the host as given), log in with an ACL user and
//! password (`AUTH user password`), select the database, `PING` (the `redis` crate).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, ProtocolVersion, RedisConnectionInfo, RedisError};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Class, ConnectorError, Failure, Target, Values};

pub const FIELDS: &[&str] = &[
    "host",
    "port",
    "tls",
    "ca_certificate",
    "database",
    "username",
    "password",
];

pub(super) async fn test(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let tls = if values.flag("tls") {
        Some(super::tls::client_config(values.opt_str("ca_certificate"))?)
    } else {
        None
    };
    let info = RedisConnectionInfo {
        db: values.int("database"),
        username: values.opt_str("username").map(str::to_string),
        password: values.opt_str("password").map(str::to_string),
        protocol: ProtocolVersion::RESP2,
    };
    let mut last = Failure::new(Class::Unreachable, "the host has no address");
    for ip in &target.addresses {
        let attempt = async {
            let stream = tokio::net::TcpStream::connect((*ip, target.port))
                .await
                .map_err(|e| super::io_failure(&e, "Redis"))?;
            match &tls {
                None => ping(&info, stream, timeout).await,
                Some(config) => {
                    let stream =
                        super::tls::handshake(stream, &target.host, config.clone()).await?;
                    ping(&info, stream, timeout).await
                }
            }
        };
        let failure = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::new(Class::Timeout, "Redis did not answer in time"),
        };
        if !matches!(failure.class, Class::Unreachable | Class::Timeout) {
            return Err(failure.into());
        }
        last = failure;
    }
    Err(last.into())
}

/// Logs in on `stream` (`AUTH`, `SELECT`) and `PING`s.
async fn ping<S>(info: &RedisConnectionInfo, stream: S, timeout: Duration) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = AsyncConnectionConfig::new().set_response_timeout(timeout);
    let (mut conn, driver) = MultiplexedConnection::new_with_config(info, stream, config)
        .await
        .map_err(|e| classify(&e))?;
    let driver = tokio::spawn(driver);
    let pong = redis::cmd("PING").query_async::<String>(&mut conn).await;
    driver.abort();
    match pong {
        Ok(pong) if pong == "PONG" => Ok(()),
        Ok(other) => {
            let shown: String = other.chars().take(40).collect();
            Err(Failure::new(
                Class::Failed,
                format!("PING answered {shown}"),
            ))
        }
        Err(e) => Err(classify(&e)),
    }
}

fn classify(e: &RedisError) -> Failure {
    let message = e.detail().map_or_else(|| e.to_string(), str::to_string);
    let code = e.code().unwrap_or_default();
    if e.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
        return Failure::new(Class::InvalidCredentials, message);
    }
    if code == "NOPERM" || code == "NOAUTH" {
        return Failure::new(Class::PermissionDenied, message);
    }
    if message.contains("DB index is out of range") {
        return Failure::new(Class::NotFound, message);
    }
    if e.is_timeout() {
        return Failure::new(Class::Timeout, "Redis did not answer in time");
    }
    if e.is_connection_refusal() {
        return Failure::new(Class::Unreachable, "connection refused");
    }
    if e.is_io_error() || e.is_connection_dropped() {
        return Failure::new(Class::Unreachable, "no Redis server answered");
    }
    Failure::new(Class::Failed, message)
}

//! The `redis` driver (Redis and the servers that speak its protocol): log in with an ACL
//! user and password (`AUTH user password`), select the database, `PING` (the `redis`
//! crate), to an address the destination policy checked.

use std::time::Duration;

use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, ProtocolVersion,
    RedisConnectionInfo, RedisError,
};

use super::{Class, ConnectorError, Failure, Target, Values};

pub const FIELDS: &[&str] = &["host", "port", "database", "username", "password"];

pub(super) async fn test(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let mut last = Failure::new(Class::Unreachable, "the host has no address");
    for ip in &target.addresses {
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(ip.to_string(), target.port),
            redis: RedisConnectionInfo {
                db: values.int("database"),
                username: values.opt_str("username").map(str::to_string),
                password: values.opt_str("password").map(str::to_string),
                protocol: ProtocolVersion::RESP2,
            },
        };
        let client =
            redis::Client::open(info).map_err(|e| Failure::new(Class::Failed, e.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let ping = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match ping.await {
            Ok(pong) if pong == "PONG" => return Ok(()),
            Ok(other) => {
                let shown: String = other.chars().take(40).collect();
                return Err(Failure::new(Class::Failed, format!("PING answered {shown}")).into());
            }
            Err(e) => {
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

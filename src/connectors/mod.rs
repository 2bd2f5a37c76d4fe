//! Native connectors: auth types the ledger can test by really talking to the service.
//!
//! Connectors are data, drivers are code. A connector ([`definition::Definition`], one JSON
//! file each under `definitions/`) names a driver and the form's fields; a driver
//! (`postgres`, `mysql`, `redis`, `amqp`, `s3`, `sftp`) does the protocol work with a maintained
//! crate: a real, authenticated, read-only operation bounded by a timeout, to an address
//! the destination policy checked. A failure is classified ([`Class`]) with the server's
//! own message where it is safe, every secret value taken out of it.

pub mod amqp;
pub mod definition;
pub mod dynamic_users;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod s3;
pub mod sftp;
mod tls;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use definition::{definition, definitions, Definition, Part, Values};

use crate::net::{DestinationError, Policy, Refused};

/// The drivers and the fields each reads (a definition naming a driver has them all).
pub const DRIVERS: &[(&str, &[&str])] = &[
    ("postgres", postgres::FIELDS),
    ("mysql", mysql::FIELDS),
    ("redis", redis::FIELDS),
    ("amqp", amqp::FIELDS),
    ("s3", s3::FIELDS),
    ("sftp", sftp::FIELDS),
];

/// Why a connection test failed, as a troubleshooting table reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Nothing accepted the connection (refused, no route, no such name, not this protocol).
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// The TLS handshake or the server's certificate failed.
    TlsFailure,
    /// The SSH server's host key is not the pinned one (refused before logging in).
    HostKeyMismatch,
    /// The server refused the user name or password.
    InvalidCredentials,
    /// Logged in, but not allowed (the database, the vhost, the command, the bucket).
    PermissionDenied,
    /// The database, bucket or vhost does not exist.
    NotFound,
    /// Any other error the server gave.
    Failed,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Unreachable => "unreachable",
            Class::Timeout => "timeout",
            Class::TlsFailure => "tls_failure",
            Class::HostKeyMismatch => "host_key_mismatch",
            Class::InvalidCredentials => "invalid_credentials",
            Class::PermissionDenied => "permission_denied",
            Class::NotFound => "not_found",
            Class::Failed => "failed",
        }
    }
}

/// A failed test: its class and a message safe to show (no secret value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", class.as_str())]
pub struct Failure {
    pub class: Class,
    pub message: String,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("no driver {0}")]
    NoDriver(String),
    /// The destination policy refuses the host or endpoint.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Failed(#[from] Failure),
}

/// Where a host-based driver connects: the name as given and the addresses the policy
/// checked (the driver connects to those, not to the name resolved again).
pub struct Target {
    pub host: url::Host<String>,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
}

/// Runs the definition's driver test with checked values; returns the round trip.
pub async fn test(
    definition: &Definition,
    values: &Values<'_>,
    timeout: Duration,
    destinations: &std::sync::Arc<Policy>,
) -> Result<Duration, ConnectorError> {
    let started = Instant::now();
    let secrets: Vec<&str> = definition
        .fields
        .iter()
        .filter(|f| f.secret)
        .filter_map(|f| values.opt_str(&f.name))
        .collect();
    let run = async {
        match definition.driver.as_str() {
            "postgres" => {
                postgres::test(values, target(values, destinations).await?, timeout).await
            }
            "mysql" => mysql::test(values, target(values, destinations).await?, timeout).await,
            "redis" => redis::test(values, target(values, destinations).await?, timeout).await,
            "amqp" => amqp::test(values, target(values, destinations).await?, timeout).await,
            "s3" => s3::test(values, timeout, destinations).await,
            "sftp" => sftp::test(values, target(values, destinations).await?, timeout).await,
            other => Err(ConnectorError::NoDriver(other.to_string())),
        }
    };
    let outcome = match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(Failure::new(Class::Timeout, format!("no answer within {timeout:?}")).into()),
        Ok(o) => o,
    };
    match outcome {
        Ok(()) => Ok(started.elapsed()),
        Err(ConnectorError::Failed(mut f)) => {
            f.message = scrub(&f.message, &secrets);
            Err(f.into())
        }
        Err(e) => Err(e),
    }
}

/// The message with every secret value replaced (servers may quote what they were sent).
fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut message: String = message.chars().take(500).collect();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        message = message.replace(s, "***");
    }
    message
}

/// The `host` and `port` fields through the destination policy.
async fn target(values: &Values<'_>, destinations: &Policy) -> Result<Target, ConnectorError> {
    let host = destinations.host(values.str("host"))?;
    let addresses = match destinations.addresses(&host).await {
        Err(DestinationError::Unreachable) => {
            return Err(Failure::new(Class::Unreachable, "the host name does not resolve").into())
        }
        Err(DestinationError::Refused(r)) => return Err(r.into()),
        Ok(ips) => ips,
    };
    Ok(Target {
        host,
        addresses,
        port: values.port(),
    })
}

/// An I/O error while connecting, classified.
pub(crate) fn io_failure(e: &std::io::Error, what: &str) -> Failure {
    use std::io::ErrorKind as K;
    // sqlx reports a failed TLS handshake (the certificate, the CA, the name) as I/O.
    let said = e.to_string();
    if ["certificate", "handshake", "TLS", "tls"]
        .iter()
        .any(|w| said.contains(w))
    {
        return Failure::new(Class::TlsFailure, said);
    }
    match e.kind() {
        K::ConnectionRefused => Failure::new(Class::Unreachable, "connection refused"),
        K::TimedOut => Failure::new(Class::Timeout, format!("{what} timed out")),
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe => {
            Failure::new(
                Class::Unreachable,
                format!("the connection was closed: no {what} server answered"),
            )
        }
        _ => Failure::new(Class::Unreachable, format!("could not connect: {e}")),
    }
}

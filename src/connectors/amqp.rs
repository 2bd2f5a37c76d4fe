//! The `amqp` driver (AMQP 0-9-1: RabbitMQ and the brokers that speak it): open a
//! connection on the vhost with the user and password (SASL PLAIN), over TLS when asked
//! (the certificate checked against the public roots or the auth config's CA, and the host
//! as given), open a channel, close both (`amqprs`), to an address the destination policy
//! checked.

use std::time::Duration;

use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::tls::TlsAdaptor;

use super::{Class, ConnectorError, Failure, Target, Values};

pub const FIELDS: &[&str] = &[
    "host",
    "port",
    "tls",
    "ca_certificate",
    "vhost",
    "username",
    "password",
];

pub(super) async fn test(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let tls = if values.flag("tls") {
        let config = super::tls::client_config(values.opt_str("ca_certificate"))?;
        Some(TlsAdaptor::new(
            tokio_rustls::TlsConnector::from(config),
            super::tls::server_name(&target.host),
        ))
    } else {
        None
    };
    let mut last = Failure::new(Class::Unreachable, "the host has no address");
    for ip in &target.addresses {
        let mut args = OpenConnectionArguments::new(
            &ip.to_string(),
            target.port,
            values.str("username"),
            values.str("password"),
        );
        args.virtual_host(values.str("vhost"))
            .connection_name("authledger-connection-test");
        if let Some(tls) = &tls {
            args.tls_adaptor(tls.clone());
        }
        let attempt = async {
            let connection = Connection::open(&args).await?;
            let channel = connection.open_channel(None).await?;
            channel.close().await?;
            connection.close().await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => last = Failure::new(Class::Timeout, format!("no answer within {timeout:?}")),
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => {
                let failure = classify(&e, tls.is_some());
                if !matches!(failure.class, Class::Unreachable | Class::Timeout) {
                    return Err(failure.into());
                }
                last = failure;
            }
        }
    }
    Err(last.into())
}

fn classify(e: &amqprs::error::Error, tls: bool) -> Failure {
    use amqprs::error::Error as E;
    let message = e.to_string();
    match e {
        // rustls' refusals of the handshake (the certificate, a peer that is not TLS).
        E::NetworkError(m)
            if tls
                && [
                    "certificate",
                    "corrupt message",
                    "alert",
                    "handshake",
                    "incompatible",
                ]
                .iter()
                .any(|w| m.to_lowercase().contains(w)) =>
        {
            Failure::new(Class::TlsFailure, format!("the TLS handshake failed: {m}"))
        }
        E::NetworkError(m) if m.contains("refused") => {
            Failure::new(Class::Unreachable, "connection refused")
        }
        // A broker that answered the protocol header, then hung up once it had the user
        // name and password: RabbitMQ's way of refusing a login to clients that do not
        // announce `authentication_failure_close`.
        E::NetworkError(m)
            if [
                "peer shutdown",
                "reset",
                "end of file",
                "broken pipe",
                "close_notify",
            ]
            .iter()
            .any(|w| m.to_lowercase().contains(w)) =>
        {
            let said = "the broker closed the connection after the login (user name or password)";
            Failure::new(Class::InvalidCredentials, said)
        }
        E::NetworkError(m) => {
            Failure::new(Class::Unreachable, format!("no AMQP broker answered ({m})"))
        }
        _ if message.contains("ACCESS_REFUSED") || message.contains("403") => {
            Failure::new(Class::InvalidCredentials, message)
        }
        _ if message.contains("not found") => Failure::new(Class::NotFound, message),
        _ if message.contains("NOT_ALLOWED") || message.contains("530") => {
            Failure::new(Class::PermissionDenied, message)
        }
        _ => Failure::new(Class::Failed, message),
    }
}

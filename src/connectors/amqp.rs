//! The `amqp` driver (AMQP 0-9-1: RabbitMQ and the brokers that speak it): open a
//! connection on the vhost with the user and password (SASL PLAIN), open a channel, close
//! both (`amqprs`), to an address the destination policy checked.

use std::time::Duration;

use amqprs::connection::{Connection, OpenConnectionArguments};

use super::{Class, ConnectorError, Failure, Target, Values};

pub const FIELDS: &[&str] = &["host", "port", "vhost", "username", "password"];

pub(super) async fn test(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
) -> Result<(), ConnectorError> {
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

fn classify(e: &amqprs::error::Error) -> Failure {
    use amqprs::error::Error as E;
    let message = e.to_string();
    match e {
        E::NetworkError(m) if m.contains("refused") => {
            Failure::new(Class::Unreachable, "connection refused")
        }
        // A broker that answered the protocol header, then hung up once it had the user
        // name and password: RabbitMQ's way of refusing a login to clients that do not
        // announce `authentication_failure_close`.
        E::NetworkError(m)
            if ["peer shutdown", "reset", "end of file", "broken pipe"]
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

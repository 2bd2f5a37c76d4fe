//! The `sftp` driver (SSH File Transfer Protocol): connect to an address the destination
//! policy checked, accept the server only when its host key has the pinned fingerprint
//! (`SHA256:…` as `ssh-keygen -lf` prints it), log in with a password or a private key
//! (OpenSSH or PEM, optionally under a passphrase), open the `sftp` subsystem and ask for
//! `realpath .` (`russh` and `russh-sftp`).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::ssh_key::Fingerprint;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;

use super::{Class, ConnectorError, Failure, Target, Values};

pub const FIELDS: &[&str] = &[
    "host",
    "port",
    "host_key_fingerprint",
    "username",
    "password",
    "private_key",
    "passphrase",
];

pub(super) async fn test(
    values: &Values<'_>,
    target: Target,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let pin = pinned(values.str("host_key_fingerprint"))?;
    let login = Login::of(values)?;
    let mut last = Failure::new(Class::Unreachable, "the host has no address");
    for ip in &target.addresses {
        let address = SocketAddr::new(*ip, target.port);
        let attempt = tokio::time::timeout(timeout, session(address, &pin, &login));
        let failure = match attempt.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::new(Class::Timeout, format!("no answer within {timeout:?}")),
        };
        if !matches!(failure.class, Class::Unreachable | Class::Timeout) {
            return Err(failure.into());
        }
        last = failure;
    }
    Err(last.into())
}

/// The pinned fingerprint: the `SHA256:…` (or `SHA512:…`) token of what was given, so a
/// whole `ssh-keygen -lf` line is accepted too.
fn pinned(given: &str) -> Result<Fingerprint, Failure> {
    let token = given
        .split_whitespace()
        .find(|t| t.starts_with("SHA256:") || t.starts_with("SHA512:"))
        .map(|t| t.trim_end_matches('='));
    token
        .and_then(|t| Fingerprint::from_str(t).ok())
        .ok_or_else(|| {
            Failure::new(
                Class::HostKeyMismatch,
                "the pinned host key fingerprint is not a SHA256:… fingerprint \
                 (as ssh-keygen -lf prints it)",
            )
        })
}

/// How to log in: the user, and a key, a password or both (the key is tried first).
struct Login {
    user: String,
    key: Option<Arc<russh::keys::PrivateKey>>,
    password: Option<String>,
}

impl Login {
    fn of(values: &Values<'_>) -> Result<Login, Failure> {
        let key = match values.opt_str("private_key") {
            None => None,
            Some(pem) => {
                let key = russh::keys::decode_secret_key(pem, values.opt_str("passphrase"))
                    .map_err(|e| {
                        let why = match e {
                            russh::keys::Error::KeyIsEncrypted => {
                                "the private key is encrypted: give its passphrase"
                            }
                            russh::keys::Error::SshKey(_)
                                if values.opt_str("passphrase").is_some() =>
                            {
                                "the private key could not be opened (a wrong passphrase?)"
                            }
                            _ => "the private key could not be read (expected OpenSSH or PEM)",
                        };
                        Failure::new(Class::InvalidCredentials, why)
                    })?;
                Some(Arc::new(key))
            }
        };
        let password = values.opt_str("password").map(str::to_string);
        if key.is_none() && password.is_none() {
            return Err(Failure::new(
                Class::InvalidCredentials,
                "neither a password nor a private key was given",
            ));
        }
        Ok(Login {
            user: values.str("username").to_string(),
            key,
            password,
        })
    }
}

/// One attempt at one address: connect, check the host key, log in, `realpath .`.
async fn session(address: SocketAddr, pin: &Fingerprint, login: &Login) -> Result<(), Failure> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| super::io_failure(&e, "SSH"))?;
    let _ = stream.set_nodelay(true);
    let config = Arc::new(client::Config::default());
    let handler = Pinned { pin: *pin };
    let mut handle = client::connect_stream(config, stream, handler)
        .await
        .map_err(|e| e.failure())?;
    authenticate(&mut handle, login).await?;
    let outcome = realpath(&handle).await;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    outcome
}

async fn authenticate(handle: &mut Handle<Pinned>, login: &Login) -> Result<(), Failure> {
    let mut refused = None;
    if let Some(key) = &login.key {
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| SshError::from(e).failure())?
            .flatten();
        let key = PrivateKeyWithHashAlg::new(key.clone(), hash);
        match handle
            .authenticate_publickey(login.user.as_str(), key)
            .await
        {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(failure) => refused = Some(failure),
            Err(e) => return Err(SshError::from(e).failure()),
        }
    }
    if let Some(password) = &login.password {
        match handle
            .authenticate_password(login.user.as_str(), password.as_str())
            .await
        {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(failure) => refused = Some(failure),
            Err(e) => return Err(SshError::from(e).failure()),
        }
    }
    let message = match refused {
        Some(AuthResult::Failure {
            partial_success: true,
            ..
        }) => "the server asks for a further authentication method after this one".to_string(),
        _ => format!(
            "the server refused the login of {:?}",
            login.user.chars().take(64).collect::<String>()
        ),
    };
    Err(Failure::new(Class::InvalidCredentials, message))
}

/// Opens the `sftp` subsystem on a session channel and resolves `.` (the login directory).
async fn realpath(handle: &Handle<Pinned>) -> Result<(), Failure> {
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| SshError::from(e).failure())?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| SshError::from(e).failure())?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| sftp_failure(&e, "the server offers no SFTP subsystem"))?;
    let resolved = sftp.canonicalize(".").await;
    let _ = sftp.close().await;
    resolved
        .map(|_| ())
        .map_err(|e| sftp_failure(&e, "realpath . failed"))
}

fn sftp_failure(e: &russh_sftp::client::error::Error, what: &str) -> Failure {
    use russh_sftp::client::error::Error as E;
    use russh_sftp::protocol::StatusCode;
    match e {
        E::Status(s) if s.status_code == StatusCode::PermissionDenied => Failure::new(
            Class::PermissionDenied,
            format!("{what}: {}", s.error_message),
        ),
        E::Status(s) if s.status_code == StatusCode::NoSuchFile => {
            Failure::new(Class::NotFound, format!("{what}: {}", s.error_message))
        }
        E::Timeout => Failure::new(Class::Timeout, format!("{what}: no answer")),
        other => Failure::new(Class::Failed, format!("{what}: {other}")),
    }
}

/// The client side of the session: accepts the server only with the pinned host key.
struct Pinned {
    pin: Fingerprint,
}

#[derive(Debug)]
enum SshError {
    Protocol(russh::Error),
    /// The server's host key is not the pinned one (its fingerprint, public).
    HostKey(String),
}

impl From<russh::Error> for SshError {
    fn from(e: russh::Error) -> SshError {
        SshError::Protocol(e)
    }
}

impl client::Handler for Pinned {
    type Error = SshError;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, SshError> {
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            PublicKeyOrCertificate::Certificate(c) => c.public_key(),
        };
        let seen = key.fingerprint(self.pin.algorithm());
        if seen == self.pin {
            Ok(true)
        } else {
            Err(SshError::HostKey(seen.to_string()))
        }
    }
}

impl SshError {
    fn failure(self) -> Failure {
        use russh::Error as E;
        let e = match self {
            SshError::HostKey(seen) => {
                return Failure::new(
                    Class::HostKeyMismatch,
                    format!(
                        "the server's host key is {seen}, not the pinned one: \
                         refused (check the key with the server's administrator)"
                    ),
                )
            }
            SshError::Protocol(e) => e,
        };
        match e {
            E::IO(io) => super::io_failure(&io, "SSH"),
            E::Version => Failure::new(
                Class::Unreachable,
                "no SSH server answered (not an SSH version string)",
            ),
            E::HUP | E::Disconnect | E::SendError | E::RecvError => Failure::new(
                Class::Unreachable,
                "the connection was closed: no SSH server answered",
            ),
            E::ConnectionTimeout | E::InactivityTimeout | E::KeepaliveTimeout | E::Elapsed(_) => {
                Failure::new(Class::Timeout, "the SSH server did not answer in time")
            }
            E::ChannelOpenFailure(why) => Failure::new(
                Class::PermissionDenied,
                format!("the server refused a session channel ({why:?})"),
            ),
            E::RequestDenied => Failure::new(
                Class::PermissionDenied,
                "the server refused the sftp subsystem",
            ),
            other => Failure::new(Class::Failed, format!("SSH: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_read_from_a_fingerprint_or_a_whole_ssh_keygen_line() {
        let fp = "SHA256:LFb4RpjYYgi5IAlctya7nTOKxSjQQy2ZDzKU2QOAJ9M";
        let want = Fingerprint::from_str(fp).expect("fingerprint");
        assert_eq!(pinned(fp).ok(), Some(want));
        assert_eq!(pinned(&format!("{fp}=")).ok(), Some(want));
        assert_eq!(
            pinned(&format!("256 {fp} root@vm (ED25519)")).ok(),
            Some(want)
        );
        for bad in [
            "",
            "MD5:aa:bb",
            "SHA256:not base64!",
            "LFb4RpjYYgi5IAlctya7nTOKxSjQQy2ZDzKU2QOAJ9M",
        ] {
            let f = pinned(bad).expect_err(bad);
            assert_eq!(f.class, Class::HostKeyMismatch, "{bad}");
        }
    }
}

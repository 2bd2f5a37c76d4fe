//! The connection to the syslog daemon: `tcp://host:port` (plain TCP, loopback only: a
//! local relay) or `tls://host:port` (RFC 5425: the daemon's certificate checked against
//! the operator's CA file, or the public web roots, and the host as given; optionally a
//! client certificate). Every connection goes to addresses the destination policy checked
//! (`net::Policy::addresses`), like the connectors'.
//!
//! A syslog daemon never answers on the stream, so the connection reads in a task of its
//! own: an end of stream or an error there means the daemon closed it (stopped,
//! restarted), and the next send opens a new one instead of writing into a dead socket.
//! The first batch on a new connection counts as sent only if the daemon keeps the
//! connection open a moment after it ([`SETTLE`]): a daemon that refuses the client after
//! the handshake (TLS 1.3 checks a client certificate after the client has finished) closes
//! it then, and the batch is sent again on the next connection instead of being lost.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use url::Host;

use crate::net::{AddressClass, DestinationError, Policy};

/// Connecting (per address) and the TLS handshake, each at most.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Writing one batch, at most.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection must stay open after its first batch for the batch to count.
pub const SETTLE: Duration = Duration::from_millis(250);

/// Where the feed goes, as configured (`--syslog-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub tls: bool,
    pub host: Host<String>,
    pub port: u16,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "tls" } else { "tcp" };
        match &self.host {
            Host::Ipv6(ip) => write!(f, "{scheme}://[{ip}]:{}", self.port),
            host => write!(f, "{scheme}://{host}:{}", self.port),
        }
    }
}

impl Destination {
    /// `tcp://host:port` or `tls://host:port`, nothing else (no user info, path or query),
    /// the host judged by the destination policy without resolving it (the connection
    /// judges every address it resolves to).
    pub fn parse(s: &str, policy: &Policy) -> Result<Destination, String> {
        let url = url::Url::parse(s)
            .map_err(|_| "--syslog-url must be tcp://host:port or tls://host:port".to_string())?;
        let tls = match url.scheme() {
            "tls" => true,
            "tcp" => false,
            other => {
                return Err(format!(
                    "--syslog-url: unknown scheme {other:?} (tcp:// or tls://)"
                ))
            }
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err("--syslog-url takes a host and a port only".into());
        }
        let port = url
            .port()
            .filter(|p| *p != 0)
            .ok_or("--syslog-url needs a port (tcp://host:514, tls://host:6514)")?;
        let host = url.host_str().ok_or("--syslog-url needs a host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = policy.host(host).map_err(|e| e.to_string())?;
        if !tls && !loopback_literal(&host) && !matches!(&host, Host::Domain(_)) {
            return Err(PLAIN_OFF_LOOPBACK.into());
        }
        Ok(Destination { tls, host, port })
    }
}

const PLAIN_OFF_LOOPBACK: &str =
    "plain tcp:// carries the audit feed in clear: only to a loopback relay; use tls:// for another host";

fn loopback_literal(host: &Host<String>) -> bool {
    let ip = match host {
        Host::Ipv4(ip) => IpAddr::V4(*ip),
        Host::Ipv6(ip) => IpAddr::V6(*ip),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            return d == "localhost" || d.ends_with(".localhost");
        }
    };
    crate::net::classify(ip) == Some(AddressClass::Loopback)
}

/// Why a send did not happen (what the log and `syslog_failures` show; never a secret:
/// the destination and rustls' or the OS's reason only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct Failure {
    /// `destination` (refused by the policy or unresolvable), `connect`, `tls`, `send`.
    pub stage: &'static str,
    pub message: String,
}

impl Failure {
    fn new(stage: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            stage,
            message: message.into(),
        }
    }
}

/// The client side of TLS: the roots in `ca_pem` (else the public web roots) and, when
/// given, a client certificate chain and its key (PEM).
pub fn tls_config(
    ca_pem: Option<&[u8]>,
    client: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|_| "--syslog-ca is not a PEM certificate file")?;
                roots.add(cert).map_err(|e| format!("--syslog-ca: {e}"))?;
            }
            if roots.is_empty() {
                return Err("--syslog-ca holds no certificate".into());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "--syslog-client-cert is not a PEM certificate file")?;
            if chain.is_empty() {
                return Err("--syslog-client-cert holds no certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|_| "--syslog-client-key is not a PEM private key")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--syslog-client-cert/--syslog-client-key: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// An open stream to the daemon.
pub struct Connection {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// Turns true when the daemon closes its end.
    closed: tokio::sync::watch::Receiver<bool>,
    reader: tokio::task::JoinHandle<()>,
    /// Nothing sent on it yet.
    fresh: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connects to the first address of `destination` that answers (every address checked
    /// by `policy`), with TLS when `tls` is given.
    pub async fn open(
        destination: &Destination,
        policy: &Policy,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Connection, Failure> {
        let addresses = match policy.addresses(&destination.host).await {
            Ok(ips) => ips,
            Err(DestinationError::Unreachable) => {
                return Err(Failure::new(
                    "destination",
                    "the host name does not resolve",
                ))
            }
            Err(DestinationError::Refused(r)) => {
                return Err(Failure::new("destination", r.to_string()))
            }
        };
        if !destination.tls
            && addresses
                .iter()
                .any(|ip| crate::net::classify(*ip) != Some(AddressClass::Loopback))
        {
            return Err(Failure::new("destination", PLAIN_OFF_LOOPBACK));
        }
        let mut last = Failure::new("connect", "no address to connect to");
        let mut stream = None;
        for ip in addresses {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, destination.port)))
                .await
            {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = Failure::new("connect", format!("{destination}: {e}")),
                Err(_) => last = Failure::new("connect", format!("{destination}: timed out")),
            }
        }
        let stream = stream.ok_or(last)?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => {
                let (read, write) = stream.into_split();
                Ok(Connection::over(read, write))
            }
            Some(config) => {
                let name = match &destination.host {
                    Host::Domain(d) => d.clone(),
                    Host::Ipv4(ip) => ip.to_string(),
                    Host::Ipv6(ip) => ip.to_string(),
                };
                let name = ServerName::try_from(name).map_err(|_| {
                    Failure::new("tls", "the host is not a name a certificate can hold")
                })?;
                let handshake =
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name, stream);
                let stream = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return Err(Failure::new(
                            "tls",
                            format!("{destination}: the TLS handshake failed: {e}"),
                        ))
                    }
                    Err(_) => {
                        return Err(Failure::new(
                            "tls",
                            format!("{destination}: the TLS handshake timed out"),
                        ))
                    }
                };
                let (read, write) = tokio::io::split(stream);
                Ok(Connection::over(read, write))
            }
        }
    }

    fn over(
        mut read: impl AsyncRead + Send + Unpin + 'static,
        write: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Connection {
        let (flag, closed) = tokio::sync::watch::channel(false);
        // The daemon sends nothing: whatever it does send is read and dropped; the end of
        // the stream (or an error) marks the connection closed.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            let _ = flag.send(true);
        });
        Connection {
            writer: Box::new(write),
            closed,
            reader,
            fresh: true,
        }
    }

    /// Whether the daemon closed the stream (then this connection is dropped, not used).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Writes `bytes` (framed messages) and flushes them; on a new connection, waits
    /// [`SETTLE`] for the daemon to keep it.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let write = async {
            self.writer.write_all(bytes).await?;
            self.writer.flush().await
        };
        match tokio::time::timeout(SEND_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::new("send", e.to_string())),
            Err(_) => return Err(Failure::new("send", "timed out")),
        }
        if std::mem::take(&mut self.fresh) {
            let closed = tokio::time::timeout(SETTLE, self.closed.wait_for(|c| *c)).await;
            if matches!(closed, Ok(Ok(_))) {
                return Err(Failure::new(
                    "send",
                    "the daemon closed the connection on its first messages (did it refuse this client?)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_tcp_or_tls_with_a_host_and_a_port() {
        let loopback = Policy::new(true, Vec::new());
        let strict = Policy::default();
        let d = Destination::parse("tls://siem.example.com:6514", &strict).expect("tls");
        assert!(d.tls);
        assert_eq!(d.to_string(), "tls://siem.example.com:6514");
        let d = Destination::parse("tcp://127.0.0.1:5514", &loopback).expect("tcp");
        assert!(!d.tls);
        assert_eq!(d.host, Host::<String>::Ipv4(std::net::Ipv4Addr::LOCALHOST));
        let d = Destination::parse("tls://[::1]:6514", &loopback).expect("v6");
        assert_eq!(d.to_string(), "tls://[::1]:6514");
        for bad in [
            "udp://127.0.0.1:514",
            "https://siem.example.com:6514",
            "tls://siem.example.com",
            "tls://user:pw@siem.example.com:6514",
            "tls://siem.example.com:6514/path",
            "tls://siem.example.com:6514?q=1",
            "siem.example.com:6514",
        ] {
            assert!(Destination::parse(bad, &loopback).is_err(), "{bad}");
        }
        // The policy: loopback only where allowed, private ranges refused.
        assert!(Destination::parse("tcp://127.0.0.1:5514", &strict).is_err());
        assert!(Destination::parse("tls://10.0.0.5:6514", &loopback).is_err());
        // Plain TCP only to loopback.
        let private = Policy::new(true, vec!["10.0.0.0/8".parse().expect("cidr")]);
        assert!(Destination::parse("tls://10.0.0.5:6514", &private).is_ok());
        let e = Destination::parse("tcp://10.0.0.5:514", &private).expect_err("plain");
        assert!(e.contains("tls://"), "{e}");
    }

    /// A daemon that keeps the connection: the first batch counts; one that closes it at
    /// once: the first batch does not.
    #[tokio::test]
    async fn the_first_batch_counts_only_on_a_connection_the_daemon_keeps() {
        let policy = Policy::new(true, Vec::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let destination =
            Destination::parse(&format!("tcp://127.0.0.1:{port}"), &policy).expect("url");
        let daemon = tokio::spawn(async move {
            let (mut kept, _) = listener.accept().await.expect("accept");
            let mut got = [0u8; 6];
            kept.read_exact(&mut got).await.expect("read");
            let (refused, _) = listener.accept().await.expect("accept");
            drop(refused);
            (kept, got)
        });
        let mut c = Connection::open(&destination, &policy, None)
            .await
            .expect("open");
        c.send(b"4 abcd").await.expect("a kept connection");
        assert!(!c.is_closed());
        let mut refused = Connection::open(&destination, &policy, None)
            .await
            .expect("open");
        let (_kept, got) = daemon.await.expect("join");
        assert_eq!(&got, b"4 abcd");
        let e = refused.send(b"1 x").await.expect_err("closed at once");
        assert_eq!(e.stage, "send");
        assert!(!c.is_closed());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        assert!(tls_config(None, None).is_ok());
        assert!(tls_config(Some(b"not pem"), None).is_err());
    }
}

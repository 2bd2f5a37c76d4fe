//! TLS for the drivers that speak it themselves over a socket they opened to a checked
//! address (`redis`, `amqp`): rustls with the public web roots, or only the CA certificate the
//! auth config gives (a private CA); the server's certificate must name the host as given.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::{Class, Failure};

/// A client configuration trusting `ca_pem`'s certificates, or the public web roots.
pub(super) fn client_config(ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, Failure> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let unreadable = || {
                Failure::new(
                    Class::TlsFailure,
                    "the CA certificate is not a PEM certificate",
                )
            };
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots
                    .add(cert.map_err(|_| unreadable())?)
                    .map_err(|_| unreadable())?;
            }
            if roots.is_empty() {
                return Err(unreadable());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(Class::TlsFailure, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the server's certificate must hold: the host as given (an address without
/// brackets).
pub(super) fn server_name(host: &url::Host<String>) -> String {
    match host {
        url::Host::Domain(d) => d.clone(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    }
}

/// The TLS handshake on `stream`, the certificate checked against `host` (a name or an
/// address, as given); a refusal is a `tls_failure` with rustls' reason.
pub(super) async fn handshake(
    stream: TcpStream,
    host: &url::Host<String>,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, Failure> {
    let name = ServerName::try_from(server_name(host)).map_err(|_| {
        Failure::new(
            Class::TlsFailure,
            "the host is not a name a certificate can hold",
        )
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| Failure::new(Class::TlsFailure, format!("the TLS handshake failed: {e}")))
}

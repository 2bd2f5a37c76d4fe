//! The one way the service makes outbound HTTP requests: a `reqwest` client bound to the
//! destination policy.

use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::destination::{DestinationError, Policy, Refused};

/// An HTTP client that reaches only what the [`Policy`] allows. Each request's URL is
/// judged first ([`Policy::url`]: form, and a host given as an address, which never reaches
/// a resolver); each name is resolved by the policy itself, which checks every address,
/// and the connection goes to one of those checked addresses (no second resolution).
/// Never follows redirects and never uses a proxy (both would connect elsewhere than to
/// the checked address). Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    policy: Arc<Policy>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The policy as `reqwest`'s resolver.
struct PolicyResolver(Arc<Policy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy
                .resolve_name(&name)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl HttpClient {
    /// A client under `policy`; `configure` sets timeouts, user agent and the like (the
    /// resolver, redirects and proxies are the policy's).
    pub fn new(
        policy: &Arc<Policy>,
        configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<HttpClient, reqwest::Error> {
        let http = configure(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
            .build()?;
        Ok(HttpClient {
            http,
            policy: policy.clone(),
        })
    }

    /// A request to `url`, if the policy allows its form and literal host.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        let url = self.policy.url(url)?;
        Ok(self.http.request(method, url))
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }
}

/// The policy's refusal behind a failed request (the resolver refused the name's
/// addresses), if that is why it failed.
pub fn refusal(e: &reqwest::Error) -> Option<Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(DestinationError::Refused(r)) = c.downcast_ref::<DestinationError>() {
            return Some(r.clone());
        }
        cause = c.source();
    }
    None
}

/// A failed request as the caller may see it: the policy's refusal, or one sentence for
/// every failure to reach the destination (refused connection, timeout, unknown name,
/// TLS), so that answers never tell an open port from a closed or filtered one.
pub fn failure(e: &reqwest::Error) -> String {
    match refusal(e) {
        Some(r) => r.to_string(),
        None => "the destination could not be reached or did not answer".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr};

    use futures::future::BoxFuture;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::net::Lookup;

    /// Every name resolves to 127.0.0.1 (the system resolver would not know them).
    struct AllLoopback;

    impl Lookup for AllLoopback {
        fn lookup(&self, _: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
            Box::pin(async { Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]) })
        }
    }

    async fn server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn names_are_resolved_by_the_policy_and_connected_to_at_the_checked_address() {
        let port = server().await;
        let open = Arc::new(Policy::new(true, Vec::new()).with_lookup(Arc::new(AllLoopback)));
        let client = HttpClient::new(&open, |b| b).unwrap();
        // `svc.localhost` exists only in the policy's resolver: the connection went there.
        let r = client
            .request(
                reqwest::Method::GET,
                &format!("http://svc.localhost:{port}/"),
            )
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "ok");

        let strict = Arc::new(Policy::default().with_lookup(Arc::new(AllLoopback)));
        let client = HttpClient::new(&strict, |b| b).unwrap();
        // An address in the URL never reaches a resolver: judged before the request.
        for url in [
            format!("https://127.0.0.1:{port}/"),
            format!("https://[::ffff:127.0.0.1]:{port}/"),
            format!("http://localhost:{port}/"),
        ] {
            assert!(client.request(reqwest::Method::GET, &url).is_err(), "{url}");
        }
        // A name whose answer is loopback now (it was public when configured): refused at
        // connection time, and the error says so.
        let e = client
            .request(
                reqwest::Method::GET,
                &format!("https://rebound.example.com:{port}/"),
            )
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(refusal(&e), Some(Refused::Address { resolved: true, .. })),
            "{e:?}"
        );
        assert!(
            failure(&e).contains("resolves to a loopback address"),
            "{}",
            failure(&e)
        );
    }

    #[tokio::test]
    async fn a_closed_port_and_an_unknown_name_read_the_same() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let open = Arc::new(Policy::new(true, Vec::new()));
        let client = HttpClient::new(&open, |b| b).unwrap();
        let e1 = client
            .request(reqwest::Method::GET, &format!("http://127.0.0.1:{closed}/"))
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let e2 = client
            .request(reqwest::Method::GET, "https://no-such-name.invalid/")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&e1), failure(&e2));
        assert!(!failure(&e1).contains("refused"), "{}", failure(&e1));
    }
}

//! The outbound destination policy: where the service may connect on a tenant's behalf.
//!
//! Every outbound destination (OAuth authorization, token and revocation endpoints, JWKS,
//! tool base URLs, native connectors) is judged here, once when it is configured (a clear
//! refusal) and again when the service connects (the DNS answer may have changed):
//!
//! 1. The URL is parsed by a real URL parser (`url`, WHATWG rules: `HTTP://`, `http:host`,
//!    `http:/host` and `http:\\host` are all plain http; `127.1`, `0` and `2130706433`
//!    are IPv4 addresses). Only `https` passes; plain `http` only to a loopback host and
//!    only when the service allows loopback destinations (`--allow-loopback-urls`). User
//!    info (`http://127.0.0.1:1@evil/`) is refused: it hides the real host and would be
//!    sent as credentials.
//! 2. The host, and when it is a name every address it resolves to, is checked against
//!    the forbidden ranges ([`classify`]): loopback, private, link-local, unique-local,
//!    carrier-grade NAT, multicast, unspecified, broadcast and reserved, IPv4-mapped,
//!    -compatible, NAT64 and 6to4 forms judged by the IPv4 address they carry. Loopback
//!    passes only with `--allow-loopback-urls`. One forbidden address refuses the name.
//! 3. The connection goes to an address checked in step 2: [`super::HttpClient`]'s
//!    resolver is this policy, so no second, unchecked resolution happens.
//!
//! An operator allow list ([`Allowed`], `serve --allow-destination <host|CIDR>`) names
//! exceptions to step 2. Refusals say why; failures to reach an allowed destination never
//! say whether a port is open ([`DestinationError::Unreachable`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ipnet::IpNet;
use url::{Host, Url};

/// How long one name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address is not a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
    Multicast,
    Unspecified,
    Broadcast,
    /// IETF protocol assignments, benchmarking, future use, Teredo and local NAT64.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::UniqueLocal => "a unique-local address",
            AddressClass::SharedAddressSpace => "a carrier-grade NAT address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Broadcast => "the broadcast address",
            AddressClass::Reserved => "a reserved address",
        })
    }
}

/// The forbidden class of an address, `None` for a public one. Pure.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => AddressClass::Unspecified,
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (100, 64..=127, _) => AddressClass::SharedAddressSpace,
        (224..=239, ..) => AddressClass::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => AddressClass::Broadcast,
        (240..=255, ..) | (192, 0, 0) | (198, 18..=19, _) => AddressClass::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        x if x & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        // Site-local (deprecated, RFC 3879): private in all but name.
        x if x & 0xffc0 == 0xfec0 => AddressClass::Private,
        x if x & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        x if x & 0xff00 == 0xff00 => AddressClass::Multicast,
        // Teredo (2001::/32) hides an IPv4 address; local-use NAT64 (64:ff9b:1::/48);
        // discard-only (100::/64).
        0x2001 if s[1] == 0 => AddressClass::Reserved,
        0x64 if s[1] == 0xff9b && s[2] == 1 => AddressClass::Reserved,
        0x100 if s[1..4] == [0, 0, 0] => AddressClass::Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), well-known NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// One exception of the operator's allow list: a host name (its addresses are not
/// checked) or an address range (addresses in it pass whatever their class). Exceptions
/// never allow plain http off loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Host(String),
    Net(IpNet),
}

impl FromStr for Allowed {
    type Err = String;

    fn from_str(s: &str) -> Result<Allowed, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Allowed::Net(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Allowed::Net(IpNet::from(ip)));
        }
        match Host::parse(s) {
            Ok(Host::Domain(d)) if !d.is_empty() => Ok(Allowed::Host(normal_name(&d))),
            Ok(Host::Ipv4(ip)) => Ok(Allowed::Net(IpNet::from(IpAddr::V4(ip)))),
            Ok(Host::Ipv6(ip)) => Ok(Allowed::Net(IpNet::from(IpAddr::V6(ip)))),
            _ => Err(format!(
                "{s:?} is neither a host name, an IP address nor a CIDR range"
            )),
        }
    }
}

/// A host name as compared: lower case, without a trailing dot.
fn normal_name(d: &str) -> String {
    d.trim_end_matches('.').to_ascii_lowercase()
}

/// `localhost` and its subdomains (RFC 6761 §6.3): loopback by definition.
fn is_localhost(d: &str) -> bool {
    let d = normal_name(d);
    d == "localhost" || d.ends_with(".localhost")
}

/// A destination the policy does not allow. The message says which rule refused it and
/// never quotes the URL (it may carry credentials), only its host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a usable URL or host (not absolute, not http(s), user info, a socket path...).
    #[error("destination refused: {0}")]
    Unusable(String),
    /// Plain http off loopback, or to loopback on a service that does not allow it.
    #[error(
        "destination refused: only https is allowed (plain http only to a loopback host, \
         and only on a service run with --allow-loopback-urls)"
    )]
    PlainHttp,
    /// The host is, or resolves to, an address in a forbidden class.
    #[error("{}", address_refusal(host, *class, *resolved))]
    Address {
        host: String,
        class: AddressClass,
        /// Whether `host` is a name that resolved to such an address.
        resolved: bool,
    },
}

fn address_refusal(host: &str, class: AddressClass, resolved: bool) -> String {
    let verb = if resolved { "resolves to" } else { "is" };
    let hint = if class == AddressClass::Loopback {
        "loopback destinations need a service run with --allow-loopback-urls"
    } else {
        "an operator can allow it with --allow-destination"
    };
    format!("destination refused: {host} {verb} {class} ({hint})")
}

/// Why a connection to a destination was not made.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The name did not resolve. Reads like any other failure to reach a destination.
    #[error("the destination could not be reached")]
    Unreachable,
}

/// Name resolution, behind a trait so tests can say what a name resolves to.
pub trait Lookup: Send + Sync {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The system resolver (`getaddrinfo`: hosts file, then DNS), bounded in time.
struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let found =
                tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0)))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "lookup timed out"))??;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

/// The deployment's destination policy. One per service, shared by every outbound client.
#[derive(Clone)]
pub struct Policy {
    allow_loopback: bool,
    allowed: Vec<Allowed>,
    lookup: Arc<dyn Lookup>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("allow_loopback", &self.allow_loopback)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// The strict policy: https to public addresses only.
impl Default for Policy {
    fn default() -> Self {
        Policy::new(false, Vec::new())
    }
}

impl Policy {
    pub fn new(allow_loopback: bool, allowed: Vec<Allowed>) -> Policy {
        Policy {
            allow_loopback,
            allowed,
            lookup: Arc::new(SystemLookup),
        }
    }

    /// The same policy resolving names with `lookup` (tests).
    pub fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Policy {
        self.lookup = lookup;
        self
    }

    /// Whether loopback destinations (and plain http to them) are allowed.
    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// Judges one address: its class, unless the allow list names a range holding it.
    pub fn judge(&self, ip: IpAddr) -> Result<(), AddressClass> {
        let canonical = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let listed = self.allowed.iter().any(|a| match a {
            Allowed::Net(net) => net.contains(&ip) || net.contains(&canonical),
            Allowed::Host(_) => false,
        });
        match classify(ip) {
            None => Ok(()),
            Some(_) if listed => Ok(()),
            Some(AddressClass::Loopback) if self.allow_loopback => Ok(()),
            Some(class) => Err(class),
        }
    }

    fn listed_name(&self, name: &str) -> bool {
        let name = normal_name(name);
        self.allowed
            .iter()
            .any(|a| matches!(a, Allowed::Host(h) if *h == name))
    }

    /// The URL's form alone: absolute, `https` (or plain `http` to a loopback host where
    /// allowed), a host, no user info, no whitespace or control characters. For URLs the
    /// service only hands out (where an OAuth provider sends the user back), never connects to.
    pub fn url_form(&self, s: &str) -> Result<Url, Refused> {
        let unusable = |why: &str| Refused::Unusable(why.into());
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(unusable(
                "the URL contains whitespace or control characters",
            ));
        }
        let url = Url::parse(s).map_err(|_| unusable("not an absolute URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(unusable("the URL carries user info (user:password@)"));
        }
        let loopback = match url.host() {
            None => return Err(unusable("the URL has no host")),
            Some(Host::Domain(d)) => is_localhost(d),
            Some(Host::Ipv4(ip)) => classify_v4(ip) == Some(AddressClass::Loopback),
            Some(Host::Ipv6(ip)) => classify_v6(ip) == Some(AddressClass::Loopback),
        };
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback && self.allow_loopback => Ok(url),
            "http" => Err(Refused::PlainHttp),
            _ => Err(unusable("only https URLs are allowed")),
        }
    }

    /// A URL the service connects to, judged without resolving it: its form
    /// ([`Policy::url_form`]) and its host if that is an address or `localhost`. Checked
    /// before every request (addresses in URLs never reach the resolver).
    pub fn url(&self, s: &str) -> Result<Url, Refused> {
        let url = self.url_form(s)?;
        match url.host() {
            Some(host) => self.literal(&host.to_owned())?,
            None => return Err(Refused::Unusable("the URL has no host".into())),
        }
        Ok(url)
    }

    /// [`Policy::url`], then every address the host resolves to (configuration time: a
    /// clear refusal now; the connection checks again). A name that does not resolve now
    /// is not refused: it is judged when the service connects.
    pub async fn check_url(&self, s: &str) -> Result<Url, Refused> {
        let url = self.url(s)?;
        if let Some(Host::Domain(d)) = url.host() {
            let plain_http = url.scheme() == "http";
            if let Ok(ips) = self.lookup.lookup(d).await {
                self.judge_all(d, &ips)?;
                // Plain http is for loopback only, whatever the name.
                if plain_http
                    && ips
                        .iter()
                        .any(|ip| classify(*ip) != Some(AddressClass::Loopback))
                {
                    return Err(Refused::PlainHttp);
                }
            }
        }
        Ok(url)
    }

    /// A bare host the service connects to (native connectors): an IP address (`::ffff:…`
    /// and shorthand IPv4 forms too) or a name; never a socket path. Judged without
    /// resolving it.
    pub fn host(&self, s: &str) -> Result<Host, Refused> {
        let unusable = |why: &str| Refused::Unusable(why.into());
        if s.is_empty() {
            return Err(unusable("the host is empty"));
        }
        if s.starts_with('/') || s.starts_with('@') || s.contains(['/', '\\']) {
            return Err(unusable(
                "the host must be a name or an address, not a socket path",
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(unusable(
                "the host contains whitespace or control characters",
            ));
        }
        let host = match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Host::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => Host::Ipv6(ip),
            Err(_) => Host::parse(s).map_err(|_| unusable("not a valid host name or address"))?,
        };
        self.literal(&host)?;
        Ok(host)
    }

    /// [`Policy::host`], then every address a name resolves to (configuration time). A name
    /// that does not resolve now is judged when the service connects.
    pub async fn check_host(&self, s: &str) -> Result<Host, Refused> {
        let host = self.host(s)?;
        match self.addresses(&host).await {
            Err(DestinationError::Refused(r)) => Err(r),
            Ok(_) | Err(DestinationError::Unreachable) => Ok(host),
        }
    }

    /// A host given as an address, or `localhost`, against the address rules.
    fn literal(&self, host: &Host<String>) -> Result<(), Refused> {
        let ip = match host {
            Host::Ipv4(ip) => IpAddr::V4(*ip),
            Host::Ipv6(ip) => IpAddr::V6(*ip),
            Host::Domain(d) if is_localhost(d) && !self.listed_name(d) => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            Host::Domain(_) => return Ok(()),
        };
        self.judge(ip).map_err(|class| Refused::Address {
            host: host.to_string(),
            class,
            resolved: false,
        })
    }

    fn judge_all(&self, name: &str, ips: &[IpAddr]) -> Result<(), Refused> {
        if self.listed_name(name) {
            return Ok(());
        }
        for ip in ips {
            self.judge(*ip).map_err(|class| Refused::Address {
                host: name.to_string(),
                class,
                resolved: true,
            })?;
        }
        Ok(())
    }

    /// The addresses to connect to for `host` (connection time): an address as it is,
    /// a name resolved once; every address is checked and one forbidden address refuses
    /// the name (a rebinding answer mixing public and internal addresses gets nowhere).
    pub async fn addresses(&self, host: &Host<String>) -> Result<Vec<IpAddr>, DestinationError> {
        self.literal(host)?;
        match host {
            Host::Ipv4(ip) => Ok(vec![IpAddr::V4(*ip)]),
            Host::Ipv6(ip) => Ok(vec![IpAddr::V6(*ip)]),
            Host::Domain(d) => {
                let ips = self
                    .lookup
                    .lookup(d)
                    .await
                    .map_err(|_| DestinationError::Unreachable)?;
                if ips.is_empty() {
                    return Err(DestinationError::Unreachable);
                }
                self.judge_all(d, &ips)?;
                Ok(ips)
            }
        }
    }

    /// [`Policy::addresses`] of a name as the HTTP client's resolver sees it.
    pub(super) async fn resolve_name(
        &self,
        name: &str,
    ) -> Result<Vec<SocketAddr>, DestinationError> {
        let host = Host::parse(name).map_err(|_| Refused::Unusable("not a valid host".into()))?;
        let ips = self.addresses(&host).await?;
        Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect())
    }
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;

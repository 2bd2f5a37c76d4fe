use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use futures::future::BoxFuture;
use proptest::prelude::*;

use super::*;

/// Names resolve to what the test says; anything else does not resolve.
struct Fake(HashMap<String, Vec<IpAddr>>);

impl Lookup for Fake {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let found = self.0.get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
        })
    }
}

fn fake(names: &[(&str, &[&str])]) -> Arc<dyn Lookup> {
    Arc::new(Fake(
        names
            .iter()
            .map(|(n, ips)| {
                (
                    n.to_string(),
                    ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                )
            })
            .collect(),
    ))
}

fn strict() -> Policy {
    Policy::default().with_lookup(fake(&[
        ("idp.example.com", &["93.184.216.34"]),
        ("internal.example.com", &["10.1.2.3"]),
        ("rebind.example.com", &["93.184.216.34", "127.0.0.1"]),
        ("hosts-file-name", &["127.0.1.1"]),
        ("metadata.example.com", &["169.254.169.254"]),
        ("v6.example.com", &["::ffff:192.168.0.1"]),
    ]))
}

fn loopback_ok() -> Policy {
    let mut p = strict();
    p.allow_loopback = true;
    p
}

#[test]
fn classes_of_addresses() {
    let cases: &[(&str, Option<AddressClass>)] = &[
        ("127.0.0.1", Some(AddressClass::Loopback)),
        ("127.255.0.9", Some(AddressClass::Loopback)),
        ("::1", Some(AddressClass::Loopback)),
        ("::ffff:127.0.0.1", Some(AddressClass::Loopback)),
        ("::127.0.0.1", Some(AddressClass::Loopback)),
        ("64:ff9b::7f00:1", Some(AddressClass::Loopback)),
        ("2002:7f00:1::", Some(AddressClass::Loopback)),
        ("10.0.0.1", Some(AddressClass::Private)),
        ("172.16.0.1", Some(AddressClass::Private)),
        ("172.31.255.255", Some(AddressClass::Private)),
        ("192.168.1.1", Some(AddressClass::Private)),
        ("::ffff:10.0.0.1", Some(AddressClass::Private)),
        ("169.254.169.254", Some(AddressClass::LinkLocal)),
        ("fe80::1", Some(AddressClass::LinkLocal)),
        ("fc00::1", Some(AddressClass::UniqueLocal)),
        ("fd12:3456::1", Some(AddressClass::UniqueLocal)),
        ("100.64.0.1", Some(AddressClass::SharedAddressSpace)),
        ("100.127.255.255", Some(AddressClass::SharedAddressSpace)),
        ("224.0.0.1", Some(AddressClass::Multicast)),
        ("ff02::1", Some(AddressClass::Multicast)),
        ("0.0.0.0", Some(AddressClass::Unspecified)),
        ("0.1.2.3", Some(AddressClass::Unspecified)),
        ("::", Some(AddressClass::Unspecified)),
        ("255.255.255.255", Some(AddressClass::Broadcast)),
        ("240.0.0.1", Some(AddressClass::Reserved)),
        ("2001:0:4136:e378::1", Some(AddressClass::Reserved)),
        ("93.184.216.34", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("2606:4700::1111", None),
        ("::ffff:93.184.216.34", None),
    ];
    for (ip, class) in cases {
        assert_eq!(classify(ip.parse().unwrap()), *class, "{ip}");
    }
}

#[test]
fn only_https_and_plain_http_to_loopback_where_allowed() {
    let p = strict();
    assert!(p.url("https://idp.example.com/jwks").is_ok());
    for bad in [
        "http://idp.example.com/jwks",
        "HTTP://127.0.0.1:9/x",
        "hTTp://127.0.0.1:9/x",
        "http:127.0.0.1:9",
        "http:/127.0.0.1:9",
        "http:\\\\127.0.0.1:9",
        "http://localhost/x",
    ] {
        assert_eq!(p.url(bad), Err(Refused::PlainHttp), "{bad}");
    }
    let p = loopback_ok();
    for ok in [
        "HTTP://127.0.0.1:9/x",
        "http:127.0.0.1:9",
        "http:/127.0.0.1:9",
        "http:\\\\127.0.0.1:9",
        "http://localhost:9/x",
        "http://[::1]:9/x",
        "http://127.1:9/",
    ] {
        assert!(p.url(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        p.url("http://idp.example.com/jwks"),
        Err(Refused::PlainHttp)
    );
    for bad in [
        "ftp://idp.example.com/",
        "file:///etc/passwd",
        "https://",
        "/relative",
        "https://a b/",
    ] {
        assert!(matches!(p.url(bad), Err(Refused::Unusable(_))), "{bad}");
    }
}

#[test]
fn user_info_is_refused_even_to_loopback() {
    for p in [strict(), loopback_ok()] {
        for bad in [
            "http://127.0.0.1:1@evil.example.com/",
            "https://user:pw@idp.example.com/",
            "https://user@idp.example.com/",
        ] {
            let e = p.url(bad).unwrap_err();
            assert!(e.to_string().contains("user info"), "{bad}: {e}");
        }
    }
}

#[test]
fn internal_addresses_are_refused_over_https_in_every_spelling() {
    let p = strict();
    for bad in [
        "https://127.0.0.1/",
        "https://127.1/",
        "https://0/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://localhost/",
        "https://LOCALHOST./",
        "https://a.localhost/",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/",
        "https://192.168.1.1/",
        "https://0.0.0.0/",
        "https://[fd00::1]/",
        "https://100.64.1.1/",
    ] {
        assert!(
            matches!(p.url(bad), Err(Refused::Address { .. })),
            "{bad}: {:?}",
            p.url(bad)
        );
    }
    let msg = p.url("https://10.0.0.1/").unwrap_err().to_string();
    assert!(msg.contains("10.0.0.1 is a private address"), "{msg}");
    assert!(msg.contains("--allow-destination"), "{msg}");
}

#[tokio::test]
async fn every_resolved_address_is_checked() {
    let p = strict();
    assert!(p.check_url("https://idp.example.com/jwks").await.is_ok());
    for (url, class) in [
        ("https://internal.example.com/", AddressClass::Private),
        ("https://rebind.example.com/", AddressClass::Loopback),
        ("https://hosts-file-name/", AddressClass::Loopback),
        ("https://metadata.example.com/", AddressClass::LinkLocal),
        ("https://v6.example.com/", AddressClass::Private),
    ] {
        match p.check_url(url).await {
            Err(Refused::Address {
                class: c,
                resolved: true,
                ..
            }) => assert_eq!(c, class, "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    // A name that does not resolve now is judged when the service connects.
    assert!(p.check_url("https://unknown.example.com/").await.is_ok());
    assert!(matches!(
        p.addresses(&Host::Domain("unknown.example.com".into()))
            .await,
        Err(DestinationError::Unreachable)
    ));
    assert!(matches!(
        p.addresses(&Host::Domain("rebind.example.com".into()))
            .await,
        Err(DestinationError::Refused(_))
    ));
    // Plain http to a name is for loopback names only.
    let l = loopback_ok();
    assert_eq!(
        l.check_url("http://hosts-file-name/").await,
        Err(Refused::PlainHttp)
    );
    assert!(l.check_url("https://hosts-file-name/").await.is_ok());
}

#[test]
fn bare_hosts_of_connectors() {
    let p = strict();
    for bad in [
        "::ffff:127.0.0.1",
        "127.1",
        "0",
        "2130706433",
        "localhost",
        "[::1]",
        "10.0.0.5",
    ] {
        assert!(
            matches!(p.host(bad), Err(Refused::Address { .. })),
            "{bad}: {:?}",
            p.host(bad)
        );
    }
    for bad in [
        "/var/run/postgresql",
        "@abstract",
        "",
        "a b",
        "db.example.com:5432",
    ] {
        assert!(matches!(p.host(bad), Err(Refused::Unusable(_))), "{bad}");
    }
    assert_eq!(
        p.host("DB.example.com"),
        Ok(Host::Domain("db.example.com".into()))
    );
    assert!(loopback_ok().host("127.0.0.1").is_ok());
    assert!(loopback_ok().host("10.0.0.5").is_err());
}

#[tokio::test]
async fn the_allow_list_names_exceptions() {
    let allowed = vec![
        "10.1.0.0/16".parse::<Allowed>().unwrap(),
        "internal.example.com".parse().unwrap(),
        "fd00::7".parse().unwrap(),
    ];
    let p = Policy::new(false, allowed).with_lookup(fake(&[
        ("internal.example.com", &["10.9.9.9"]),
        ("other.example.com", &["10.9.9.9"]),
    ]));
    assert!(p.url("https://10.1.2.3/").is_ok());
    assert!(p.url("https://[::ffff:10.1.2.3]/").is_ok());
    assert!(p.url("https://10.2.0.1/").is_err());
    assert!(p.url("https://[fd00::7]/").is_ok());
    assert!(p.check_url("https://Internal.Example.com./").await.is_ok());
    assert!(p.check_url("https://other.example.com/").await.is_err());
    // Exceptions never allow plain http off loopback.
    assert_eq!(p.url("http://10.1.2.3/"), Err(Refused::PlainHttp));
    for bad in ["", "10.0.0.0/33", "a/b", "http://x"] {
        assert!(bad.parse::<Allowed>().is_err(), "{bad}");
    }
}

/// Spellings of one IPv4 address that the URL parser reads as that address.
fn spellings(ip: Ipv4Addr) -> Vec<String> {
    let [a, b, c, d] = ip.octets();
    let n = u32::from(ip);
    vec![
        ip.to_string(),
        n.to_string(),
        format!("{n:#x}"),
        format!(
            "{a}.{}",
            (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)
        ),
        format!("{a:#x}.{b:#x}.{c:#x}.{d:#x}"),
        format!("0{a:o}.{b}.{c}.{d}"),
        format!("[::ffff:{ip}]"),
        format!("[{}]", ip.to_ipv6_mapped()),
    ]
}

fn case_mix(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, ch)| {
            if mask >> (i % 64) & 1 == 1 {
                ch.to_ascii_uppercase()
            } else {
                ch
            }
        })
        .collect()
}

fn forbidden_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(127, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(10, b, c, d)),
        (16u8..32, any::<[u8; 2]>()).prop_map(|(b, [c, d])| Ipv4Addr::new(172, b, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(192, 168, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(169, 254, c, d)),
        (64u8..128, any::<[u8; 2]>()).prop_map(|(b, [c, d])| Ipv4Addr::new(100, b, c, d)),
        (224u8..=255, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(0, b, c, d)),
    ]
}

fn public_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("public", |ip| classify(IpAddr::V4(*ip)).is_none())
}

proptest! {
    /// Whatever the spelling or case of scheme and host, a URL whose host is a forbidden
    /// IPv4 address is refused (loopback allowed only with the flag, and only loopback).
    #[test]
    fn forbidden_addresses_are_refused_in_any_spelling(
        ip in forbidden_v4(),
        mask in any::<u64>(),
        https in any::<bool>(),
        slashes in prop::sample::select(vec!["//", "/", "", "\\\\", "/\\"]),
        port in proptest::option::of(1u16..),
        allow_loopback in any::<bool>(),
    ) {
        let p = Policy::new(allow_loopback, Vec::new());
        let loopback = classify(IpAddr::V4(ip)) == Some(AddressClass::Loopback);
        for host in spellings(ip) {
            let scheme = if https { "https" } else { "http" };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = case_mix(&format!("{scheme}:{slashes}{host}{port}/x"), mask);
            let got = p.url(&url);
            if loopback && allow_loopback {
                prop_assert!(got.is_ok(), "{url}: {got:?}");
                let parsed = got.unwrap();
                let host = parsed.host().map(|h| h.to_owned());
                prop_assert!(
                    host == Some(Host::Ipv4(ip)) || host == Some(Host::Ipv6(ip.to_ipv6_mapped())),
                    "{url}: {host:?}"
                );
            } else {
                prop_assert!(got.is_err(), "{url} passed");
            }
        }
    }

    /// A name resolving to any forbidden address among public ones is refused.
    #[test]
    fn a_name_with_one_forbidden_address_is_refused(
        bad in forbidden_v4(),
        good in prop::collection::vec(public_v4(), 0..3),
        at in any::<prop::sample::Index>(),
        mask in any::<u64>(),
    ) {
        let mut ips: Vec<IpAddr> = good.into_iter().map(IpAddr::V4).collect();
        ips.insert(at.index(ips.len() + 1), IpAddr::V4(bad));
        let lookup = Arc::new(Fake(HashMap::from([("svc.example.com".to_string(), ips)])));
        let p = Policy::default().with_lookup(lookup);
        let url = case_mix("https://svc.example.com/jwks", mask);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        prop_assert!(rt.block_on(p.check_url(&url)).is_err(), "{url}");
        prop_assert!(rt.block_on(p.addresses(&Host::Domain("svc.example.com".into()))).is_err());
    }

    /// Public addresses pass over https, by address or by a name resolving to them.
    #[test]
    fn public_addresses_pass(ips in prop::collection::vec(public_v4(), 1..4), v6 in any::<u128>()) {
        let v6 = Ipv6Addr::from((v6 & ((1u128 << 112) - 1)) | (0x2606u128 << 112));
        let mut all: Vec<IpAddr> = ips.iter().copied().map(IpAddr::V4).collect();
        all.push(IpAddr::V6(v6));
        let p = Policy::default().with_lookup(Arc::new(Fake(HashMap::from([(
            "api.example.com".to_string(),
            all.clone(),
        )]))));
        for ip in &ips {
            prop_assert!(p.url(&format!("https://{ip}/")).is_ok(), "{ip}");
            prop_assert!(p.host(&ip.to_string()).is_ok(), "{ip}");
        }
        prop_assert!(p.url(&format!("https://[{v6}]/")).is_ok(), "{v6}");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        prop_assert!(rt.block_on(p.check_url("https://api.example.com/")).is_ok());
        let got = rt.block_on(p.addresses(&Host::Domain("api.example.com".into()))).unwrap();
        prop_assert_eq!(got, all);
    }
}

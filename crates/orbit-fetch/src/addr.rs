//! Address policy: which IP addresses a mediated request may connect to,
//! and a DNS resolver that hands the HTTP client only vetted addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 ranges refused unless the operator allows them, with the reason
/// recorded for operators.
const DENIED_V4: &[(Ipv4Net, &str)] = &[
    (Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), "unspecified (0.0.0.0/8)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), "private (10/8, RFC 1918)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), "shared address space (100.64/10, CGNAT)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8), "loopback (127/8)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16), "link-local (169.254/16, cloud metadata)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12), "private (172.16/12, RFC 1918)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), "IETF protocol assignments (192.0.0/24)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24), "documentation (192.0.2/24)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24), "6to4 relay anycast (192.88.99/24)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), "private (192.168/16, RFC 1918)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), "benchmarking (198.18/15)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24), "documentation (198.51.100/24)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24), "documentation (203.0.113/24)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4), "multicast (224/4)"),
    (Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), "reserved or broadcast (240/4)"),
];

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv6 ranges refused unless the operator allows them. Anything outside
/// global unicast (`2000::/3`) is refused as well.
const DENIED_V6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified (::)"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback (::1)"),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), "IPv4-mapped IPv6 (::ffff:0:0/96)"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible IPv6 (::/96)"),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), "NAT64 (64:ff9b::/96)"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64 (64:ff9b:1::/48)"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only (100::/64)"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo (2001::/32)"),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), "benchmarking (2001:2::/48)"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation (2001:db8::/32)"),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4 (2002::/16)"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique-local (fc00::/7)"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local (fe80::/10)"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local (fec0::/10)"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast (ff00::/8)"),
];

const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Why `ip` is refused by default, or `None` for an ordinary public
/// address.
///
/// Refused: loopback, unspecified, RFC 1918 private, CGNAT, link-local
/// (including the cloud metadata address `169.254.169.254`), IETF protocol
/// assignments, documentation and benchmarking ranges, multicast, reserved
/// and broadcast IPv4; and for IPv6 everything outside global unicast
/// (`2000::/3`: loopback, unspecified, IPv4-mapped, IPv4-compatible, NAT64,
/// unique-local, link-local, multicast) plus Teredo, 6to4, documentation and
/// benchmarking ranges. IPv6 forms that embed an IPv4 address are refused
/// whatever the embedded address is.
pub fn denied_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => DENIED_V4.iter().find(|(net, _)| net.contains(&v4)).map(|(_, why)| *why),
        IpAddr::V6(v6) => DENIED_V6
            .iter()
            .find(|(net, _)| net.contains(&v6))
            .map(|(_, why)| *why)
            .or_else(|| (!GLOBAL_UNICAST_V6.contains(&v6)).then_some("not IPv6 global unicast (2000::/3)")),
    }
}

/// The address policy: the default deny list minus the operator's
/// `allow_ips`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub(crate) fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// `Err(reason)` when `ip` may not be connected to.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        match denied_reason(ip) {
            None => Ok(()),
            Some(_) if self.allow.iter().any(|net| net.contains(&ip)) => Ok(()),
            Some(why) => Err(why),
        }
    }
}

/// The listen addresses of the host's own servers (`orbit serve`): a guest
/// never reaches them, whatever the operator's `allow_ips` says, so a run
/// cannot call the API or the gateway with the host's network position.
#[derive(Debug, Default)]
pub(crate) struct OwnAddresses(std::sync::RwLock<Vec<SocketAddr>>);

impl OwnAddresses {
    pub(crate) fn add(&self, addr: SocketAddr) {
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        if !list.contains(&addr) {
            list.push(addr);
        }
    }

    /// Whether some own server listens on `port`.
    pub(crate) fn guards(&self, port: u16) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).iter().any(|a| a.port() == port)
    }

    /// Whether `ip:port` reaches an own server. One bound to an unspecified
    /// address (`0.0.0.0`, `::`) is reached through any loopback,
    /// unspecified or non-public address of this host.
    pub(crate) fn hits(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        self.0.read().unwrap_or_else(|e| e.into_inner()).iter().any(|own| {
            own.port() == port
                && (own.ip().to_canonical() == ip
                    || (own.ip().is_unspecified()
                        && (ip.is_loopback() || ip.is_unspecified() || denied_reason(ip).is_some())))
        })
    }
}

/// Raised by [`VettingResolver`] when a name resolves to a refused address;
/// found again in the HTTP client's error chain to answer
/// `permission-denied`.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolved to {addr}, which is refused: {reason}")]
pub(crate) struct BlockedResolution {
    pub(crate) host: String,
    pub(crate) addr: IpAddr,
    pub(crate) reason: &'static str,
}

/// Raised by [`VettingResolver`] when the name does not resolve in time or
/// at all.
#[derive(Debug, thiserror::Error)]
#[error("resolving {host}: {detail}")]
pub(crate) struct ResolveFailed {
    pub(crate) host: String,
    pub(crate) detail: String,
}

/// A DNS resolver for the shared HTTP client: it resolves each name once,
/// checks every address it got, and hands the client only those addresses,
/// so the connection goes to an address that was checked and DNS rebinding
/// gets no second lookup. A name any of whose addresses is refused is
/// refused as a whole.
///
/// hyper-util's connector never asks the resolver about IP literals; those
/// are checked on the parsed URL before the request is sent.
pub(crate) struct VettingResolver {
    pub(crate) policy: Arc<AddressPolicy>,
    pub(crate) timeout: Duration,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let timeout = self.timeout;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let looked_up = {
                let lookup = tokio::net::lookup_host((host.as_str(), 0));
                tokio::time::timeout(timeout, lookup).await.map(|r| r.map(|a| a.collect::<Vec<SocketAddr>>()))
            };
            let addrs: Vec<SocketAddr> = match looked_up {
                Ok(Ok(addrs)) => addrs,
                Ok(Err(e)) => return Err(Box::new(ResolveFailed { host, detail: e.to_string() }) as _),
                Err(_) => {
                    return Err(Box::new(ResolveFailed { host, detail: format!("no answer within {timeout:?}") }) as _);
                }
            };
            if addrs.is_empty() {
                return Err(Box::new(ResolveFailed { host, detail: "no addresses".to_owned() }) as _);
            }
            for a in &addrs {
                if let Err(reason) = policy.check(a.ip()) {
                    return Err(Box::new(BlockedResolution { host, addr: a.ip(), reason }) as _);
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(s: &str) -> bool {
        denied_reason(s.parse().unwrap()).is_some()
    }

    #[test]
    fn classifies_special_ranges() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "192.0.0.170",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:a9fe:a9fe",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2001::1",
            "100::1",
        ] {
            assert!(denied(ip), "{ip} should be denied");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert!(!denied(ip), "{ip} should be allowed");
        }
    }

    use proptest::prelude::*;

    /// Special-purpose ranges as the IANA registries list them, written
    /// apart from the deny lists so a range dropped from those is still
    /// drawn from.
    const SPECIAL_V4: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ];
    const SPECIAL_V6: &[&str] = &[
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "::/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/32",
        "2001:2::/48",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ];

    /// Addresses drawn anywhere, and inside each special range (edges and
    /// interior).
    fn any_v4() -> impl Strategy<Value = Ipv4Addr> {
        let inside = prop::sample::select(SPECIAL_V4).prop_flat_map(|net| {
            let net: Ipv4Net = net.parse().unwrap();
            (u32::from(net.network())..=u32::from(net.broadcast())).prop_map(Ipv4Addr::from)
        });
        prop_oneof![any::<u32>().prop_map(Ipv4Addr::from), inside]
    }

    fn any_v6() -> impl Strategy<Value = Ipv6Addr> {
        let inside = prop::sample::select(SPECIAL_V6).prop_flat_map(|net| {
            let net: Ipv6Net = net.parse().unwrap();
            (u128::from(net.network())..=u128::from(net.broadcast())).prop_map(Ipv6Addr::from)
        });
        prop_oneof![any::<u128>().prop_map(Ipv6Addr::from), inside, any_v4().prop_map(|a| a.to_ipv6_mapped())]
    }

    proptest! {
        /// Every address of every special range is refused.
        #[test]
        fn every_special_range_is_refused(v4 in any_v4(), v6 in any_v6()) {
            let in_v4 = SPECIAL_V4.iter().any(|n| n.parse::<Ipv4Net>().unwrap().contains(&v4));
            prop_assert_eq!(denied_reason(IpAddr::V4(v4)).is_some(), in_v4, "{}", v4);
            if SPECIAL_V6.iter().any(|n| n.parse::<Ipv6Net>().unwrap().contains(&v6)) {
                prop_assert!(denied_reason(IpAddr::V6(v6)).is_some(), "{}", v6);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Nothing the standard library calls special is ever allowed.
        #[test]
        fn an_allowed_v4_address_is_ordinary(ip in any_v4()) {
            if denied_reason(IpAddr::V4(ip)).is_none() {
                prop_assert!(!ip.is_loopback() && !ip.is_unspecified() && !ip.is_private());
                prop_assert!(!ip.is_link_local() && !ip.is_multicast() && !ip.is_broadcast());
                prop_assert!(!ip.is_documentation());
                prop_assert!(ip.octets()[0] != 0 && ip.octets()[0] < 224);
            }
        }

        #[test]
        fn an_allowed_v6_address_is_global_unicast_with_no_v4_inside(ip in any_v6()) {
            if denied_reason(IpAddr::V6(ip)).is_none() {
                prop_assert!(GLOBAL_UNICAST_V6.contains(&ip));
                prop_assert!(!ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast());
                prop_assert!(!ip.is_unique_local() && !ip.is_unicast_link_local());
                prop_assert!(ip.to_ipv4().is_none(), "{ip} embeds an IPv4 address");
            }
        }

        /// Every IPv6 form that carries an IPv4 address is refused whatever
        /// the address: mapped, compatible, NAT64 and 6to4.
        #[test]
        fn v4_inside_v6_is_always_refused(ip in any::<u32>().prop_map(Ipv4Addr::from)) {
            let [a, b, c, d] = ip.octets();
            let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            for v6 in [
                ip.to_ipv6_mapped(),
                ip.to_ipv6_compatible(),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            ] {
                prop_assert!(denied_reason(IpAddr::V6(v6)).is_some(), "{v6} allowed");
            }
        }

        /// The operator's allow list opens exactly its ranges.
        #[test]
        fn the_allow_list_opens_exactly_its_ranges(ip in any_v4(), net in (any_v4(), 8u8..=32)) {
            let net = IpNet::V4(Ipv4Net::new(net.0, net.1).unwrap().trunc());
            let policy = AddressPolicy::new(vec![net]);
            let ip = IpAddr::V4(ip);
            let expected = denied_reason(ip).is_none() || net.contains(&ip);
            prop_assert_eq!(policy.check(ip).is_ok(), expected);
        }
    }

    #[test]
    fn operator_allowlist_overrides() {
        let p = AddressPolicy::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(p.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(p.check("::ffff:127.0.0.1".parse().unwrap()).is_err());
        assert!(AddressPolicy::default().check("127.0.0.1".parse().unwrap()).is_err());
    }
}

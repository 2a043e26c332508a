//! Where a node connects (`docs/node.md`, "What a node connects to"): every address a
//! destination resolves to is checked, and the connection goes to a checked address, never to a
//! second resolution.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The node's egress rules.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Ports a destination may use.
    pub ports: BTreeSet<u16>,
    /// The node's own addresses (never destinations).
    pub own: BTreeSet<IpAddr>,
    /// Loopback destinations allowed (tests with a local origin only).
    pub allow_loopback: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ports: [80, 443].into_iter().collect(),
            own: BTreeSet::new(),
            allow_loopback: false,
        }
    }
}

/// Why a destination is refused; the text is the proxy's answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("port {0} is not allowed by this node")]
    Port(u16),
    #[error("{0} is not a public address")]
    NotPublic(IpAddr),
    #[error("{0} is this node's own address")]
    Own(IpAddr),
    #[error("{0} does not resolve")]
    Unresolved(String),
    #[error("{host} resolves to {addr}, which is not a public address")]
    ResolvesPrivate { host: String, addr: IpAddr },
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared (CGNAT),
/// multicast, broadcast, unspecified, documentation, benchmarking or reserved, in IPv4, IPv6 or
/// an IPv6 form of an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) forms of an IPv4 address.
            if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo, benchmarking, ...)
                || s[0] == 0x2002) // 6to4 (embeds an IPv4 address)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

impl Policy {
    /// Checks one resolved address.
    pub fn check_addr(&self, addr: SocketAddr) -> Result<(), Refusal> {
        if !self.ports.contains(&addr.port()) {
            return Err(Refusal::Port(addr.port()));
        }
        let ip = addr.ip();
        if self.own.contains(&ip) {
            return Err(Refusal::Own(ip));
        }
        if ip.is_loopback() && self.allow_loopback {
            return Ok(());
        }
        if !is_public(ip) {
            return Err(Refusal::NotPublic(ip));
        }
        Ok(())
    }

    /// Resolves `host:port` and checks every address it resolves to; returns them all when every
    /// one passes (a name with one private address among public ones is refused: its owner can
    /// steer which one a connection uses).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        if !self.ports.contains(&port) {
            return Err(Refusal::Port(port));
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| Refusal::Unresolved(host.to_string()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refusal::Unresolved(host.to_string()));
        }
        for a in &addrs {
            self.check_addr(*a).map_err(|e| match e {
                Refusal::NotPublic(addr) if host.parse::<IpAddr>().is_err() => {
                    Refusal::ResolvesPrivate {
                        host: host.to_string(),
                        addr,
                    }
                }
                other => other,
            })?;
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_pass() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002::1",
        ];
        for a in refused {
            assert!(!is_public(a.parse().unwrap()), "{a} must be refused");
        }
        for a in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a} is public");
        }
    }

    #[tokio::test]
    async fn ports_own_addresses_loopback_and_names_are_checked() {
        let mut p = Policy::default();
        assert_eq!(p.resolve("1.1.1.1", 22).await, Err(Refusal::Port(22)));
        assert_eq!(
            p.resolve("127.0.0.1", 80).await,
            Err(Refusal::NotPublic("127.0.0.1".parse().unwrap()))
        );
        // "localhost" resolves to loopback: refused as a name resolving to a private address.
        assert!(matches!(
            p.resolve("localhost", 80).await,
            Err(Refusal::ResolvesPrivate { .. })
        ));
        p.own.insert("1.1.1.1".parse().unwrap());
        assert_eq!(
            p.resolve("1.1.1.1", 443).await,
            Err(Refusal::Own("1.1.1.1".parse().unwrap()))
        );
        p.allow_loopback = true;
        assert_eq!(
            p.resolve("127.0.0.1", 80).await,
            Ok(vec!["127.0.0.1:80".parse().unwrap()])
        );
    }
}

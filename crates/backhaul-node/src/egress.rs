//! Where a node connects (`docs/node.md`, "What a node connects to"): every address a
//! destination resolves to is checked, and the connection goes to a checked address, never to a
//! second resolution.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// Looks a name up: every address `host:port` resolves to, in one answer.
pub trait Resolve: Send + Sync {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The system's resolver (`tokio::net::lookup_host`): the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// The node's egress rules.
#[derive(Clone)]
pub struct Policy {
    /// Ports a destination may use.
    pub ports: BTreeSet<u16>,
    /// The node's own addresses (never destinations).
    pub own: BTreeSet<IpAddr>,
    /// Loopback destinations allowed (tests with a local origin only).
    pub allow_loopback: bool,
    /// How names are looked up ([`SystemResolver`] unless a test answers for it); asked once
    /// per destination.
    pub resolver: Arc<dyn Resolve>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ports: [80, 443].into_iter().collect(),
            own: BTreeSet::new(),
            allow_loopback: false,
            resolver: Arc::new(SystemResolver),
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("ports", &self.ports)
            .field("own", &self.own)
            .field("allow_loopback", &self.allow_loopback)
            .finish_non_exhaustive()
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

    /// Resolves `host:port` (one lookup) and checks every address it resolves to; returns them
    /// all when every one passes (a name with one private address among public ones is refused:
    /// its owner can steer which one a connection uses). The caller connects to the addresses
    /// returned, never to a second resolution of the name, which could answer otherwise (DNS
    /// rebinding).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        if !self.ports.contains(&port) {
            return Err(Refusal::Port(port));
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self
                .resolver
                .lookup(host, port)
                .await
                .map_err(|_| Refusal::Unresolved(host.to_string()))?,
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

    /// A rebinding name's server: each lookup gets the next scripted answer, the last one again
    /// once the script runs out; it counts the lookups.
    struct Rebinding {
        answers: std::sync::Mutex<Vec<Vec<IpAddr>>>,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl Rebinding {
        fn new(answers: &[&[&str]]) -> Arc<Self> {
            Arc::new(Rebinding {
                answers: std::sync::Mutex::new(
                    answers
                        .iter()
                        .rev()
                        .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
                        .collect(),
                ),
                lookups: Default::default(),
            })
        }

        fn lookups(&self) -> usize {
            self.lookups.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Resolve for Rebinding {
        fn lookup<'a>(
            &'a self,
            _host: &'a str,
            port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.pop().unwrap()
            } else {
                answers.last().cloned().unwrap_or_default()
            };
            let addrs = answer
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect();
            Box::pin(async move { Ok(addrs) })
        }
    }

    #[tokio::test]
    async fn dns_rebinding_is_refused_and_only_the_checked_answer_is_connected_to() {
        // One answer with a public and a private address: refused, whichever order they come
        // in (the name's owner could steer a connection to the private one).
        let dns = Rebinding::new(&[&["93.184.216.34", "192.168.1.1"], &["10.0.0.1"]]);
        let p = Policy {
            resolver: dns.clone(),
            ..Policy::default()
        };
        assert_eq!(
            p.resolve("rebind.example", 443).await,
            Err(Refusal::ResolvesPrivate {
                host: "rebind.example".into(),
                addr: "192.168.1.1".parse().unwrap(),
            })
        );
        assert_eq!(dns.lookups(), 1);
        let dns = Rebinding::new(&[&["fd00::1", "2606:4700:4700::1111"]]);
        let p = Policy {
            resolver: dns.clone(),
            ..Policy::default()
        };
        assert_eq!(
            p.resolve("rebind.example", 443).await,
            Err(Refusal::ResolvesPrivate {
                host: "rebind.example".into(),
                addr: "fd00::1".parse().unwrap(),
            })
        );

        // A first answer all public, then the name rebinds to a private address: what is
        // returned for connecting is the first answer, checked, and the name is looked up once;
        // the rebinding answer is never consulted for that connection.
        let dns = Rebinding::new(&[&["93.184.216.34", "1.1.1.1"], &["10.0.0.1"]]);
        let p = Policy {
            resolver: dns.clone(),
            ..Policy::default()
        };
        let checked = p.resolve("rebind.example", 443).await;
        assert_eq!(
            checked,
            Ok(vec![
                "93.184.216.34:443".parse().unwrap(),
                "1.1.1.1:443".parse().unwrap()
            ])
        );
        assert_eq!(dns.lookups(), 1, "the name is resolved once");
        for a in checked.unwrap() {
            assert_eq!(p.check_addr(a), Ok(()));
        }
        // The next destination naming it is resolved afresh, and its rebinding answer is
        // refused.
        assert_eq!(
            p.resolve("rebind.example", 443).await,
            Err(Refusal::ResolvesPrivate {
                host: "rebind.example".into(),
                addr: "10.0.0.1".parse().unwrap(),
            })
        );
        assert_eq!(dns.lookups(), 2);

        // Neither an address literal nor a refused port is looked up; a name with no address
        // does not resolve.
        let dns = Rebinding::new(&[&[]]);
        let p = Policy {
            resolver: dns.clone(),
            ..Policy::default()
        };
        assert_eq!(
            p.resolve("1.1.1.1", 443).await,
            Ok(vec!["1.1.1.1:443".parse().unwrap()])
        );
        assert_eq!(
            p.resolve("rebind.example", 22).await,
            Err(Refusal::Port(22))
        );
        assert_eq!(dns.lookups(), 0);
        assert_eq!(
            p.resolve("rebind.example", 443).await,
            Err(Refusal::Unresolved("rebind.example".into()))
        );
        assert_eq!(dns.lookups(), 1);
    }
}

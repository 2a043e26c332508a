//! The proxy request at the start of a session's byte stream: SOCKS5 `CONNECT` (RFC 1928, no
//! authentication) or HTTP `CONNECT`, parsed incrementally, and the answers a proxy gives.

use std::net::SocketAddr;

/// The most bytes an HTTP `CONNECT` request's head may take.
pub const MAX_HTTP_HEAD: usize = 8 * 1024;

/// Which protocol the client spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Socks5,
    HttpConnect,
}

/// Where the client wants to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// A malformed or unsupported request; the text is what the client is told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("not a SOCKS5 or HTTP CONNECT request")]
    Unknown,
    #[error("SOCKS5: the client offers no method this node accepts (only \"no authentication\")")]
    NoMethod,
    #[error("SOCKS5: only CONNECT is served (command {0})")]
    Command(u8),
    #[error("SOCKS5: address type {0} is not supported")]
    AddressType(u8),
    #[error("SOCKS5: malformed request")]
    MalformedSocks,
    #[error("HTTP: only CONNECT host:port is served")]
    HttpMethod,
    #[error("HTTP: malformed CONNECT request")]
    MalformedHttp,
    #[error("HTTP: request head longer than {MAX_HTTP_HEAD} bytes")]
    HttpTooLong,
}

/// What to do after feeding bytes: send `reply` first (possibly empty), then wait for more
/// (`connect` is `None`) or connect to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub reply: Vec<u8>,
    pub connect: Option<Connect>,
}

/// A complete request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub protocol: Protocol,
    pub target: Target,
    /// Bytes the client sent after the request (the start of its stream).
    pub rest: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Start,
    SocksGreeted,
    Http,
}

/// The incremental parser.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    state: State,
    buf: Vec<u8>,
    /// Whether the SOCKS5 method reply went out in a returned [`Step`] (a greeting and a bad
    /// request in one call leave it unsent: the answer to the error must carry it first).
    method_replied: bool,
}

impl Handshake {
    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Step, ProxyError> {
        self.buf.extend_from_slice(bytes);
        let mut reply = vec![];
        if self.state == State::Start {
            let Some(&first) = self.buf.first() else {
                return Ok(Step {
                    reply,
                    connect: None,
                });
            };
            if first == 5 {
                // VER NMETHODS METHODS...
                let Some(&n) = self.buf.get(1) else {
                    return Ok(Step {
                        reply,
                        connect: None,
                    });
                };
                let end = 2 + usize::from(n);
                let Some(methods) = self.buf.get(2..end) else {
                    return Ok(Step {
                        reply,
                        connect: None,
                    });
                };
                if !methods.contains(&0) {
                    return Err(ProxyError::NoMethod);
                }
                self.buf.drain(..end);
                self.state = State::SocksGreeted;
                reply = vec![5, 0];
            } else if first.is_ascii_uppercase() {
                self.state = State::Http;
            } else {
                return Err(ProxyError::Unknown);
            }
        }
        let connect = match self.state {
            State::SocksGreeted => self.socks_request()?,
            State::Http => self.http_request()?,
            State::Start => None,
        };
        if self.state == State::SocksGreeted {
            self.method_replied = true;
        }
        Ok(Step { reply, connect })
    }

    /// The answer to `e`, which [`Handshake::feed`] returned for a stream whose first byte was
    /// `first_byte`: [`malformed`]'s, after the SOCKS5 method reply when that never went out.
    pub fn refusal(&self, first_byte: Option<u8>, e: &ProxyError) -> Vec<u8> {
        let mut out = vec![];
        if self.state == State::SocksGreeted && !self.method_replied {
            out.extend_from_slice(&[5, 0]);
        }
        out.extend(malformed(first_byte, e));
        out
    }

    /// VER CMD RSV ATYP DST.ADDR DST.PORT
    fn socks_request(&mut self) -> Result<Option<Connect>, ProxyError> {
        let b = &self.buf;
        if b.len() < 4 {
            return Ok(None);
        }
        if b[0] != 5 || b[2] != 0 {
            return Err(ProxyError::MalformedSocks);
        }
        if b[1] != 1 {
            return Err(ProxyError::Command(b[1]));
        }
        let (host, at) = match b[3] {
            1 => {
                let Some(a) = b.get(4..8) else {
                    return Ok(None);
                };
                (
                    std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
                    8,
                )
            }
            4 => {
                let Some(a) = b.get(4..20) else {
                    return Ok(None);
                };
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                (std::net::Ipv6Addr::from(o).to_string(), 20)
            }
            3 => {
                let Some(&n) = b.get(4) else {
                    return Ok(None);
                };
                let n = usize::from(n);
                let Some(name) = b.get(5..5 + n) else {
                    return Ok(None);
                };
                let name = std::str::from_utf8(name).map_err(|_| ProxyError::MalformedSocks)?;
                if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic()) {
                    return Err(ProxyError::MalformedSocks);
                }
                (name.to_string(), 5 + n)
            }
            other => return Err(ProxyError::AddressType(other)),
        };
        let Some(p) = b.get(at..at + 2) else {
            return Ok(None);
        };
        let port = u16::from_be_bytes([p[0], p[1]]);
        let rest = b[at + 2..].to_vec();
        Ok(Some(Connect {
            protocol: Protocol::Socks5,
            target: Target { host, port },
            rest,
        }))
    }

    /// `CONNECT host:port HTTP/1.x` and headers, up to the empty line.
    fn http_request(&mut self) -> Result<Option<Connect>, ProxyError> {
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_HTTP_HEAD {
                return Err(ProxyError::HttpTooLong);
            }
            return Ok(None);
        };
        if end > MAX_HTTP_HEAD {
            return Err(ProxyError::HttpTooLong);
        }
        let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| ProxyError::MalformedHttp)?;
        let line = head.split("\r\n").next().unwrap_or_default();
        let mut words = line.split(' ');
        let (Some(method), Some(authority), Some(version), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(ProxyError::MalformedHttp);
        };
        if method != "CONNECT" {
            return Err(ProxyError::HttpMethod);
        }
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return Err(ProxyError::MalformedHttp);
        }
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or(ProxyError::MalformedHttp)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| ProxyError::MalformedHttp)?;
        if host.is_empty() || !host.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(ProxyError::MalformedHttp);
        }
        let rest = self.buf[end + 4..].to_vec();
        Ok(Some(Connect {
            protocol: Protocol::HttpConnect,
            target: Target {
                host: host.to_string(),
                port,
            },
            rest,
        }))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a proxy answers when the connection to the target is made.
pub fn success(protocol: Protocol, bound: SocketAddr) -> Vec<u8> {
    match protocol {
        Protocol::Socks5 => socks_reply(0, Some(bound)),
        Protocol::HttpConnect => b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
    }
}

/// How a connection failed, for the proxy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Refused by the node's egress rules.
    NotAllowed,
    /// The target could not be reached.
    Unreachable,
    /// The target refused the connection.
    Refused,
    /// The request itself was bad.
    BadRequest,
}

/// What a proxy answers when it does not connect; `why` goes in the HTTP body.
pub fn failure(protocol: Protocol, f: Failure, why: &str) -> Vec<u8> {
    match protocol {
        Protocol::Socks5 => socks_reply(
            match f {
                Failure::NotAllowed => 2,
                Failure::Unreachable => 4,
                Failure::Refused => 5,
                Failure::BadRequest => 1,
            },
            None,
        ),
        Protocol::HttpConnect => {
            let status = match f {
                Failure::NotAllowed => "403 Forbidden",
                Failure::Unreachable | Failure::Refused => "502 Bad Gateway",
                Failure::BadRequest => "400 Bad Request",
            };
            let body = format!("{why}\n");
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

fn socks_reply(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![5, code, 0];
    match bound {
        Some(SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]),
    }
    out
}

/// The answer to a request that could not be parsed, in the protocol it seemed to be.
pub fn malformed(first_byte: Option<u8>, e: &ProxyError) -> Vec<u8> {
    match (first_byte, e) {
        (Some(5), ProxyError::NoMethod) => vec![5, 0xff],
        (Some(5), ProxyError::Command(_)) => socks_reply(7, None),
        (Some(5), ProxyError::AddressType(_)) => socks_reply(8, None),
        (Some(5), _) => socks_reply(1, None),
        _ => failure(Protocol::HttpConnect, Failure::BadRequest, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn connect_of(step: Step) -> Connect {
        step.connect.expect("complete")
    }

    #[test]
    fn socks5_byte_by_byte_and_all_at_once() {
        let greeting = [5u8, 1, 0];
        let request = [
            5u8, 1, 0, 3, 11, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'o', b'r', b'g', 0,
            80, b'G',
        ];
        let mut h = Handshake::default();
        let mut replies = vec![];
        let mut done = None;
        for b in greeting.iter().chain(request.iter()) {
            let s = h.feed(&[*b]).unwrap();
            replies.extend(s.reply);
            if s.connect.is_some() {
                done = s.connect;
                break;
            }
        }
        assert_eq!(replies, vec![5, 0]);
        let c = done.expect("complete");
        assert_eq!(
            (c.protocol, c.target.host.as_str(), c.target.port, c.rest),
            (Protocol::Socks5, "example.org", 80, vec![])
        );
        let mut h = Handshake::default();
        let all: Vec<u8> = greeting.iter().chain(request.iter()).copied().collect();
        let s = h.feed(&all).unwrap();
        assert_eq!(s.reply, vec![5, 0]);
        assert_eq!(connect_of(s).rest, vec![b'G']);
        // IPv4 and IPv6 targets.
        let mut h = Handshake::default();
        let s = h
            .feed(&[5, 1, 0, 5, 1, 0, 1, 93, 184, 216, 34, 1, 187])
            .unwrap();
        assert_eq!(connect_of(s).target.host, "93.184.216.34");
        let mut h = Handshake::default();
        let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
        v6.extend_from_slice(
            &"2606:4700::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v6.extend_from_slice(&[1, 187]);
        assert_eq!(connect_of(h.feed(&v6).unwrap()).target.host, "2606:4700::1");
    }

    #[test]
    fn http_connect_and_its_errors() {
        let mut h = Handshake::default();
        let s = h
            .feed(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\nhello")
            .unwrap();
        let c = connect_of(s);
        assert_eq!(
            (
                c.protocol,
                c.target.host.as_str(),
                c.target.port,
                c.rest.as_slice()
            ),
            (Protocol::HttpConnect, "example.org", 443, &b"hello"[..])
        );
        let bad = |b: &[u8]| Handshake::default().feed(b).unwrap_err();
        assert_eq!(
            bad(b"GET http://x/ HTTP/1.1\r\n\r\n"),
            ProxyError::HttpMethod
        );
        assert_eq!(
            bad(b"CONNECT nohostport HTTP/1.1\r\n\r\n"),
            ProxyError::MalformedHttp
        );
        assert_eq!(
            bad(b"CONNECT a:99999 HTTP/1.1\r\n\r\n"),
            ProxyError::MalformedHttp
        );
        assert_eq!(bad(&[b'C'; MAX_HTTP_HEAD + 1]), ProxyError::HttpTooLong);
        assert_eq!(bad(&[0x16, 3, 1]), ProxyError::Unknown);
        assert_eq!(bad(&[5, 1, 2]), ProxyError::NoMethod);
        assert_eq!(
            bad(&[5, 1, 0, 5, 2, 0, 1, 1, 1, 1, 1, 0, 80]),
            ProxyError::Command(2)
        );
        assert_eq!(bad(&[5, 1, 0, 5, 1, 0, 9]), ProxyError::AddressType(9));
        // A greeting and a bad request at once: the method reply, then the error's.
        let mut h = Handshake::default();
        let e = h
            .feed(&[5, 1, 0, 5, 2, 0, 1, 1, 1, 1, 1, 0, 80])
            .unwrap_err();
        assert_eq!(
            h.refusal(Some(5), &e),
            vec![5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        // In two steps the method reply already went out.
        let mut h = Handshake::default();
        assert_eq!(h.feed(&[5, 1, 0]).unwrap().reply, vec![5, 0]);
        let e = h.feed(&[5, 2, 0, 1, 1, 1, 1, 1, 0, 80]).unwrap_err();
        assert_eq!(h.refusal(Some(5), &e), vec![5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            failure(Protocol::Socks5, Failure::NotAllowed, "x")[1],
            2,
            "connection not allowed by ruleset"
        );
        assert!(String::from_utf8(failure(
            Protocol::HttpConnect,
            Failure::NotAllowed,
            "private"
        ))
        .unwrap()
        .starts_with("HTTP/1.1 403"));
    }

    proptest! {
        #[test]
        fn arbitrary_streams_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut h = Handshake::default();
            for c in chunks {
                if h.feed(&c).is_err() {
                    break;
                }
            }
        }
    }
}

//! The proxy request at the start of a session's byte stream: SOCKS5 `CONNECT` (RFC 1928, no
//! authentication), HTTP `CONNECT`, or a plain-HTTP request in absolute form
//! (`GET http://host/path HTTP/1.1`), parsed incrementally, and the answers a proxy gives.
//!
//! A plain-HTTP request is forwarded once: its request line is rewritten to origin form
//! (`GET /path HTTP/1.1`), `Host` is set from the URL, the hop-by-hop headers (`Connection`, the
//! headers it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Upgrade`) are dropped and
//! `Connection: close` is added, so the origin closes after its answer and the session ends with
//! it: one request per connection (a client sends its next request on a new connection).

use std::net::SocketAddr;

/// The most bytes an HTTP `CONNECT` request's head may take.
pub const MAX_HTTP_HEAD: usize = 8 * 1024;

/// Which protocol the client spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Socks5,
    HttpConnect,
    /// A plain-HTTP request in absolute form, forwarded to the origin (no answer of the proxy's
    /// own on success: the origin's response is the answer).
    HttpForward,
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
    #[error(
        "HTTP: a proxy request is CONNECT host:port or a request for an absolute http:// URL \
         (GET http://host/path HTTP/1.1), not a path alone"
    )]
    HttpMethod,
    #[error("HTTP: https:// URLs go through CONNECT (curl does this by itself), not forwarded")]
    HttpsForward,
    #[error("HTTP: malformed URL {0:?} (expected http://host[:port]/path)")]
    BadUrl(String),
    #[error("HTTP: credentials in the URL are not forwarded")]
    UrlCredentials,
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

    /// `CONNECT host:port HTTP/1.x` or `METHOD http://host[:port]/path HTTP/1.x`, and headers,
    /// up to the empty line.
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
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default();
        let mut words = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(ProxyError::MalformedHttp);
        };
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return Err(ProxyError::MalformedHttp);
        }
        if method.is_empty() || !method.bytes().all(|c| c.is_ascii_uppercase()) {
            return Err(ProxyError::MalformedHttp);
        }
        if method != "CONNECT" {
            let (target, head) = forwarded(method, target, version, lines)?;
            let mut rest = head.into_bytes();
            rest.extend_from_slice(&self.buf[end + 4..]);
            return Ok(Some(Connect {
                protocol: Protocol::HttpForward,
                target,
                rest,
            }));
        }
        let (host, port) = target.rsplit_once(':').ok_or(ProxyError::MalformedHttp)?;
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

/// Headers a proxy does not pass on (RFC 9110 7.6.1), besides those `Connection` names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// The destination of an absolute-form request, and its head as the origin gets it: origin-form
/// request line, `Host` from the URL, no hop-by-hop headers, `Connection: close`.
fn forwarded<'a>(
    method: &str,
    url: &str,
    version: &str,
    headers: impl Iterator<Item = &'a str> + Clone,
) -> Result<(Target, String), ProxyError> {
    let Some(scheme_end) = url.find("://") else {
        return Err(ProxyError::HttpMethod);
    };
    match url[..scheme_end].to_ascii_lowercase().as_str() {
        "http" => {}
        "https" => return Err(ProxyError::HttpsForward),
        _ => return Err(ProxyError::BadUrl(url.to_string())),
    }
    let after = &url[scheme_end + 3..];
    let split = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, path) = after.split_at(split);
    if authority.contains('@') {
        return Err(ProxyError::UrlCredentials);
    }
    let bad = || ProxyError::BadUrl(url.to_string());
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or_else(bad)?),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        None => 80,
        Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-_:".contains(&c))
    {
        return Err(bad());
    }
    if !path.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(bad());
    }
    // The fragment is the client's own; a query alone gets the root path.
    let path = path.split('#').next().unwrap_or_default();
    let path = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    let mut named: Vec<String> = HOP_BY_HOP.iter().map(|h| h.to_string()).collect();
    for h in headers.clone() {
        if let Some((name, value)) = h.split_once(':') {
            if name.trim().eq_ignore_ascii_case("connection") {
                named.extend(value.split(',').map(|v| v.trim().to_ascii_lowercase()));
            }
        }
    }
    let mut head = format!("{method} {path} {version}\r\nHost: {authority}\r\n");
    for h in headers {
        let Some((name, _)) = h.split_once(':') else {
            return Err(ProxyError::MalformedHttp);
        };
        let name = name.to_ascii_lowercase();
        if name.is_empty() || name.contains(' ') {
            return Err(ProxyError::MalformedHttp);
        }
        if name == "host" || named.contains(&name) {
            continue;
        }
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    Ok((
        Target {
            host: host.to_string(),
            port,
        },
        head,
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a proxy answers when the connection to the target is made.
pub fn success(protocol: Protocol, bound: SocketAddr) -> Vec<u8> {
    match protocol {
        Protocol::Socks5 => socks_reply(0, Some(bound)),
        Protocol::HttpConnect => b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
        Protocol::HttpForward => Vec::new(),
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
        Protocol::HttpConnect | Protocol::HttpForward => {
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
        assert_eq!(bad(b"GET /x HTTP/1.1\r\n\r\n"), ProxyError::HttpMethod);
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

    #[test]
    fn plain_http_is_forwarded_in_origin_form_without_hop_by_hop_headers() {
        let mut h = Handshake::default();
        let c = connect_of(
            h.feed(
                b"POST http://Example.org:8080/a/b?q=1#frag HTTP/1.1\r\nHost: other\r\n\
                  User-Agent: curl\r\nProxy-Connection: Keep-Alive\r\n\
                  Proxy-Authorization: Basic eA==\r\nConnection: keep-alive, X-Secret\r\n\
                  X-Secret: 1\r\nKeep-Alive: 5\r\nContent-Length: 4\r\n\r\nbody",
            )
            .unwrap(),
        );
        assert_eq!(c.protocol, Protocol::HttpForward);
        assert_eq!(
            c.target,
            Target {
                host: "Example.org".into(),
                port: 8080
            }
        );
        assert_eq!(
            String::from_utf8(c.rest).unwrap(),
            "POST /a/b?q=1 HTTP/1.1\r\nHost: Example.org:8080\r\nUser-Agent: curl\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\nbody"
        );
        assert!(success(Protocol::HttpForward, "1.2.3.4:5".parse().unwrap()).is_empty());
        // The default port, a query alone, an IPv6 literal, HTTP/1.0.
        let one = |b: &[u8]| connect_of(Handshake::default().feed(b).unwrap());
        let c = one(b"GET http://example.org HTTP/1.0\r\n\r\n");
        assert_eq!(
            (c.target.port, &c.rest[..16]),
            (80, &b"GET / HTTP/1.0\r\n"[..])
        );
        let c = one(b"GET http://example.org?x HTTP/1.1\r\n\r\n");
        assert!(c
            .rest
            .starts_with(b"GET /?x HTTP/1.1\r\nHost: example.org\r\n"));
        let c = one(b"GET http://[2606:4700::1]:81/ HTTP/1.1\r\n\r\n");
        assert_eq!(
            (c.target.host.as_str(), c.target.port),
            ("2606:4700::1", 81)
        );
        // Malformed ones.
        let bad = |b: &[u8]| Handshake::default().feed(b).unwrap_err();
        assert_eq!(
            bad(b"GET https://example.org/ HTTP/1.1\r\n\r\n"),
            ProxyError::HttpsForward
        );
        assert_eq!(
            bad(b"GET http://u:p@example.org/ HTTP/1.1\r\n\r\n"),
            ProxyError::UrlCredentials
        );
        for url in [
            "http:///x",
            "http://a:99999/",
            "http://a:0/",
            "http://a:b/",
            "ftp://a/",
            "http://[::1/",
            "http://a b/",
        ] {
            let e = bad(format!("GET {url} HTTP/1.1\r\n\r\n").as_bytes());
            assert!(
                matches!(e, ProxyError::BadUrl(_) | ProxyError::MalformedHttp),
                "{url}: {e:?}"
            );
        }
        assert_eq!(
            bad(b"GET http://a/ HTTP/1.1\r\nno colon\r\n\r\n"),
            ProxyError::MalformedHttp
        );
        assert_eq!(
            bad(b"GET http://a/ HTTP/2\r\n\r\n"),
            ProxyError::MalformedHttp
        );
        let text = String::from_utf8(malformed(Some(b'G'), &ProxyError::HttpsForward)).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 400") && text.contains("CONNECT"),
            "{text}"
        );
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

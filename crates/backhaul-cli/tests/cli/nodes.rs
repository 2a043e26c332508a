//! Real traffic through the real binaries: `backhaul node serve` and `backhaul firm gateway` run
//! as processes against the local endpoint and three real oracles; `curl` fetches a few MiB from
//! a local origin through gateway → node → origin, over SOCKS5, HTTP CONNECT and plain HTTP
//! (`curl --proxy` without `-p`: the node forwards the request in origin form). The bodies
//! arrive intact; every oracle stores each session's top receipt, whose amount is exactly the
//! payload bytes that moved (receipts count the bytes of the proxied stream both ways, the
//! proxy request and answers included; the channel's framing, 19 bytes per frame, is not
//! billed). Refusals are clear: a grant the buyer did not sign, a buyer without credits, private
//! and loopback destinations, malformed proxy requests and URLs; the node keeps serving.
//! A node killed (SIGKILL) with receipts queued while the oracles were down delivers them after
//! a restart, and the oracles count each session once. A node behind a relay is found in the
//! directory, and links again after the relay restarts (the relay's metrics count the splices).

use crate::common::*;
use backhaul_cli::context::signing_key;
use backhaul_cli::operator;
use backhaul_client::BuyerIdentity;
use backhaul_node::client::{ClientContext, ClientSession, OpenError};
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::{Oracle, Settings};
use backhaul_sdk::ix;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PRICE: u64 = 100_000;
const MIB: usize = 1 << 20;

/// The origin's body of `size` bytes: not all alike, so that a byte out of place shows.
fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

/// A local origin: `GET /bytes/N` answers N bytes, then closes. A request line in absolute form
/// or a `Proxy-*` header (what a proxy should not pass on) gets a `400`.
async fn origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let target = text.split_whitespace().nth(1).unwrap_or_default();
                if !target.starts_with('/') || text.to_ascii_lowercase().contains("\r\nproxy-") {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let size: usize = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/bytes/"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.write_all(&body(size)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

/// A `backhaul` process, killed when dropped.
struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
    out: PathBuf,
}

impl Proc {
    fn spawn(name: &str, dir: &Path, args: Vec<String>) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = dir.join(format!("{name}.out"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backhaul"));
        for var in [
            "BACKHAUL_URL",
            "BACKHAUL_KEYPAIR",
            "BACKHAUL_MINT",
            "BACKHAUL_CONFIG",
            "BACKHAUL_ORACLES",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        let child = cmd
            .args(&args)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("the backhaul binary starts");
        Proc {
            child,
            name: name.into(),
            log,
            out,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until `addr` accepts connections (the process is up).
    async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} does not listen on {addr}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `signal` and waits (at most 20 s) for the process to end.
    async fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        unsafe {
            libc::kill(pid, signal);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not stop:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr() -> SocketAddr {
    format!("127.0.0.1:{}", unused_port())
        .parse()
        .expect("addr")
}

/// `--url`, `--mint` and one `--oracle` per URL.
fn chain_args(w: &Deployed, oracles: &[String]) -> Vec<String> {
    let mut a = vec![
        "--url".to_string(),
        w.net.url(),
        "--mint".into(),
        w.mint.to_string(),
    ];
    for o in oracles {
        a.extend(["--oracle".to_string(), o.clone()]);
    }
    a
}

/// `backhaul node serve` on `listen`, loopback and the origin's port allowed unless
/// `loopback` is false.
fn node_args(
    w: &Deployed,
    oracles: &[String],
    listen: SocketAddr,
    key: &Path,
    data: &Path,
    origin: u16,
    loopback: bool,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "node",
        "serve",
        "--listen",
        &listen.to_string(),
        "--node-keypair",
        &path_str(key),
        "--data-dir",
        &path_str(data),
        "--port",
        &origin.to_string(),
        "--receipt-every-bytes",
        "262144",
        "--max-unreceipted-bytes",
        "1048576",
        "--timeout-secs",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if loopback {
        a.push("--allow-loopback".into());
    }
    a.extend(chain_args(w, oracles));
    a
}

/// `backhaul firm gateway` on `listen` through `node` (`KEY@HOST:PORT`).
fn gateway_args(
    w: &Deployed,
    oracles: &[String],
    listen: SocketAddr,
    node: &str,
    client: &Path,
    grant: &Path,
    dir: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "firm",
        "gateway",
        "--listen",
        &listen.to_string(),
        "--node",
        node,
        "--client-keypair",
        &path_str(client),
        "--grant-file",
        &path_str(grant),
        "--data-dir",
        &path_str(&dir.join("queue")),
        "--report",
        &path_str(&dir.join("report.json")),
        "--timeout-secs",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(chain_args(w, oracles));
    a
}

/// Runs curl with `args`; its output and exit status.
async fn curl(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .args(&args)
            .output()
            .expect("curl runs (is it installed?)")
    })
    .await
    .expect("curl task")
}

/// How curl reaches the gateway.
#[derive(Clone, Copy)]
enum Via {
    /// `--socks5-hostname`: the node resolves the name.
    Socks,
    /// `-p --proxy`: HTTP CONNECT.
    Connect,
    /// `--proxy` alone: a plain-HTTP request in absolute form, forwarded by the node.
    Plain,
}

/// Fetches `/bytes/size` from the origin through the gateway with curl and checks the body.
async fn curl_fetch(gateway: SocketAddr, origin: u16, size: usize, via: Via, out: &Path) {
    let url = format!("http://127.0.0.1:{origin}/bytes/{size}");
    let proxy = match via {
        Via::Socks => vec!["--socks5-hostname".to_string(), gateway.to_string()],
        Via::Connect => vec![
            "-p".to_string(),
            "--proxy".into(),
            format!("http://{gateway}"),
        ],
        Via::Plain => vec!["--proxy".to_string(), format!("http://{gateway}")],
    };
    let mut args = proxy;
    args.extend(["--fail".into(), "-o".into(), path_str(out), url]);
    let o = curl(args).await;
    assert!(
        o.status.success(),
        "curl: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let got = std::fs::read(out).expect("curl's output");
    assert_eq!(got.len(), size);
    assert!(got == body(size), "the body arrived intact");
}

/// Writes `request` to the gateway, reads everything back: (bytes sent, bytes received).
async fn raw(gateway: SocketAddr, request: &[u8]) -> (usize, Vec<u8>) {
    let mut s = TcpStream::connect(gateway).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got))
        .await
        .expect("an answer in time")
        .expect("read");
    (request.len(), got)
}

/// The gateway's usage report.
fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report"))
        .expect("report json")
}

/// The gateway's report once it lists `n` sessions with receipts (a session ends, and is
/// reported, a moment after the scraper has its last byte).
async fn report_with(dir: &Path, n: usize, procs: &[&Proc]) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r: Option<serde_json::Value> = std::fs::read(dir.join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(r) = r.as_ref().filter(|r| receipted(r).len() >= n) {
            return r.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {}:\n{}", p.name, p.log()))
                .collect();
            panic!(
                "no {n} receipted sessions in the report: {r:#?}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each session's stored (top) receipt at an oracle: session id (hex) → (sequence, bytes).
async fn tops(o: &Oracle) -> BTreeMap<String, (u64, u64)> {
    backhaul_oracle::db::signed_receipts(&o.closer.pool, 0)
        .await
        .expect("the oracle's receipts")
        .into_iter()
        .map(|r| {
            let id: String = r
                .receipt
                .session_id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (id, (r.receipt.sequence, r.receipt.cumulative_bytes))
        })
        .collect()
}

/// The sessions of a report that have a countersigned receipt: id → (sequence, bytes).
fn receipted(report: &serde_json::Value) -> BTreeMap<String, (u64, u64)> {
    report["recent"]
        .as_array()
        .expect("recent sessions")
        .iter()
        .filter(|s| s["last_sequence"].as_u64() > Some(0))
        .map(|s| {
            (
                s["session_id"].as_str().expect("id").to_string(),
                (
                    s["last_sequence"].as_u64().expect("sequence"),
                    s["last_cumulative_bytes"].as_u64().expect("bytes"),
                ),
            )
        })
        .collect()
}

/// Waits until every oracle holds exactly `expected` as the top receipt of each of those
/// sessions, and no other session.
async fn oracles_count(oracles: &[Oracle], expected: &BTreeMap<String, (u64, u64)>) {
    for (i, o) in oracles.iter().enumerate() {
        wait_for(
            &format!("oracle {i} to hold every session's receipt"),
            30,
            || async {
                let got = tops(o).await;
                (got == *expected).then_some(())
            },
        )
        .await;
    }
}

/// Starts oracle `i` of `w` at `addr` over its data folder (the same across restarts).
async fn start_oracle(w: &Deployed, i: usize, addr: SocketAddr) -> Oracle {
    let settings = Settings {
        listen: addr,
        data_dir: w.net.dir.path().join(format!("oracle-{i}")),
        rpc_url: w.net.url(),
        config: w.d.config.to_string(),
        keypair: Some(w.net.keypair_file(&format!("oracle-{i}"), &w.oracles[i])),
        price_credits_per_token: Some(PRICE),
        close_poll_secs: 1,
        submit_poll_secs: 1,
        ..Settings::default()
    };
    let chain = Arc::new(RpcChain {
        rpc: Arc::new(RpcClient::new_with_commitment(
            w.net.url(),
            CommitmentConfig::confirmed(),
        )),
        addresses: Addresses {
            program_id: backhaul::ID,
            config: w.d.config,
        },
    });
    Oracle::start(settings, chain)
        .await
        .unwrap_or_else(|e| panic!("oracle {i} starts: {e:#}"))
}

/// A buyer with credits, a node bound to an operator, a client key the buyer granted (its
/// grant written with `firm grant --write-grant`), all known to the oracles.
struct Parties {
    buyer_file: PathBuf,
    node: Keypair,
    node_file: PathBuf,
    client: Keypair,
    client_file: PathBuf,
    grant_file: PathBuf,
}

async fn parties(w: &Deployed, urls: &[String]) -> Parties {
    let net = &w.net;
    let buyer = net.funded().await;
    w.give_tokens(&buyer.pubkey(), 500 * TOKEN).await;
    net.send(
        &[ix::buy_credits(
            &w.d,
            &buyer.pubkey(),
            &w.d.ata(&buyer.pubkey()),
            100 * TOKEN,
            1,
            buyer.pubkey(),
            0,
        )],
        &buyer,
        &[],
    )
    .await;
    let operator = net.funded().await;
    let node = Keypair::new();
    let node_file = net.keypair_file("node", &node);
    let bound = operator::bind_node(&w.ctx(&operator, urls), &signing_key(&node), Some(0), None)
        .await
        .expect("bind the node");
    assert_eq!(bound.exit_code(), std::process::ExitCode::SUCCESS);
    let client = Keypair::new();
    let client_file = net.keypair_file("client", &client);
    let buyer_file = net.keypair_file("buyer", &buyer);
    let grant_file = net.dir.path().join("grant.json");
    let mut words = vec![
        "firm".to_string(),
        "grant".into(),
        client.pubkey().to_string(),
        "--epoch".into(),
        "0".into(),
        "--write-grant".into(),
        path_str(&grant_file),
        "--keypair".into(),
        path_str(&buyer_file),
    ];
    for u in urls {
        words.extend(["--oracle".to_string(), u.clone()]);
    }
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let o = w.run_cli(&refs).await;
    assert!(o.status.success(), "firm grant: {}", stderr(&o));
    Parties {
        buyer_file,
        node,
        node_file,
        client,
        client_file,
        grant_file,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_through_a_gateway_and_a_node_reaches_the_origin_and_every_oracle_counts_it() {
    let w = deploy(Net::start(true), START, 3 * EPOCH_SECS).await;
    let (oracles, urls) = start_oracles(&w, PRICE).await;
    let p = parties(&w, &urls).await;
    let dir = w.net.dir.path().to_path_buf();
    let origin = origin().await;

    // The node, then the gateway, as processes.
    let node_addr = addr();
    let metrics_addr = addr();
    let mut args = node_args(
        &w,
        &urls,
        node_addr,
        &p.node_file,
        &dir.join("node-data"),
        origin,
        true,
    );
    args.extend(["--metrics-listen".to_string(), metrics_addr.to_string()]);
    let mut node = Proc::spawn("node", &dir, args);
    node.wait_listening(node_addr).await;
    let node_id = format!("{}@{node_addr}", p.node.pubkey());
    let gw_addr = addr();
    let gw_dir = dir.join("gateway");
    // This one signs its grant at start with the buyer's keypair and sends it to the oracles.
    let mut args = gateway_args(
        &w,
        &urls,
        gw_addr,
        &node_id,
        &p.client_file,
        &p.grant_file,
        &gw_dir,
    );
    let at = args
        .iter()
        .position(|a| a == "--grant-file")
        .expect("--grant-file");
    args[at] = "--buyer-keypair".into();
    args[at + 1] = path_str(&p.buyer_file);
    let mut gateway = Proc::spawn("gateway", &dir, args);
    gateway.wait_listening(gw_addr).await;

    // curl: 3 MiB over SOCKS5 (the node resolves the name), 2 MiB over HTTP CONNECT, 1.5 MiB as
    // plain HTTP (curl sends `GET http://...` with `Proxy-Connection`; the origin gets
    // `GET /bytes/...` without it, or it would answer 400).
    curl_fetch(gw_addr, origin, 3 * MIB, Via::Socks, &dir.join("a.bin")).await;
    curl_fetch(gw_addr, origin, 2 * MIB, Via::Connect, &dir.join("b.bin")).await;
    curl_fetch(gw_addr, origin, 3 * MIB / 2, Via::Plain, &dir.join("p.bin")).await;
    // A client that counts every byte it sends and receives.
    let request = format!(
        "CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n\r\nGET /bytes/100000 HTTP/1.1\r\nHost: origin\r\n\r\n"
    );
    let (sent, got) = raw(gw_addr, request.as_bytes()).await;
    assert!(got.ends_with(&body(100_000)));
    let moved = (sent + got.len()) as u64;
    // The same for plain HTTP: billed is what the client sent (its request as it wrote it, not
    // the node's rewriting of it) plus what it received.
    let request = format!(
        "GET http://127.0.0.1:{origin}/bytes/50000 HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n"
    );
    let (sent, got) = raw(gw_addr, request.as_bytes()).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK") && got.ends_with(&body(50_000)),
        "{}",
        String::from_utf8_lossy(&got[..got.len().min(200)])
    );
    let plain_moved = (sent + got.len()) as u64;

    // Refusals, each saying why; the node keeps serving.
    for (request, says) in [
        (
            "GET https://127.0.0.1/ HTTP/1.1\r\n\r\n".to_string(),
            "https:// URLs go through CONNECT",
        ),
        (
            format!("GET http://user:pw@127.0.0.1:{origin}/ HTTP/1.1\r\n\r\n"),
            "credentials in the URL are not forwarded",
        ),
        (
            format!("GET http://127.0.0.1:{origin}x/ HTTP/1.1\r\n\r\n"),
            "malformed URL",
        ),
        (
            "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "not a path alone",
        ),
    ] {
        let (_, answer) = raw(gw_addr, request.as_bytes()).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 400") && text.contains(says),
            "{request}: {text}"
        );
    }
    let (_, bad) = raw(gw_addr, b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n").await;
    let text = String::from_utf8_lossy(&bad);
    assert!(
        text.starts_with("HTTP/1.1 400") && text.contains("malformed CONNECT"),
        "{text}"
    );
    // SOCKS5 BIND (command 2): "command not supported".
    let mut bind = vec![5u8, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1];
    bind.extend_from_slice(&origin.to_be_bytes());
    let (_, answer) = raw(gw_addr, &bind).await;
    assert_eq!(answer, vec![5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    let (_, private) = raw(
        gw_addr,
        format!("CONNECT 10.0.0.1:{origin} HTTP/1.1\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&private);
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("10.0.0.1 is not a public address"),
        "{text}"
    );
    let (_, port) = raw(gw_addr, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n").await;
    let text = String::from_utf8_lossy(&port);
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("port 22 is not allowed"),
        "{text}"
    );
    // What curl makes of it: SOCKS5 reply 2 ("connection not allowed by ruleset"), HTTP 403.
    let o = curl(vec![
        "--socks5-hostname".into(),
        gw_addr.to_string(),
        format!("http://10.0.0.1:{origin}/"),
    ])
    .await;
    let said = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && said.contains("SOCKS5") && said.contains("(2)"),
        "{said}"
    );
    let o = curl(vec![
        "-p".into(),
        "--proxy".into(),
        format!("http://{gw_addr}"),
        format!("http://10.0.0.1:{origin}/"),
    ])
    .await;
    let said = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && said.contains("403"), "{said}");
    // Plain HTTP goes through the same egress rules: curl gets the node's 403 as the answer.
    let o = curl(vec![
        "--proxy".into(),
        format!("http://{gw_addr}"),
        "-w".into(),
        "%{http_code}".into(),
        format!("http://10.0.0.1:{origin}/"),
    ])
    .await;
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        said.starts_with("10.0.0.1 is not a public address") && said.ends_with("403"),
        "{said}"
    );
    curl_fetch(gw_addr, origin, MIB, Via::Socks, &dir.join("c.bin")).await;

    // The report: the fetches' receipts cover exactly the bytes that moved.
    let r = report_with(&gw_dir, 6, &[&node, &gateway]).await;
    let recent = r["recent"].as_array().expect("recent").clone();
    // Sessions end (and are reported) a moment after the scraper's last byte, in any order:
    // by size, they are the 50,000-byte (plain HTTP) and 100,000-byte fetches, then 1, 1.5
    // (plain HTTP), 2 and 3 MiB.
    let mut fetches: Vec<&serde_json::Value> = recent
        .iter()
        .filter(|s| s["last_sequence"].as_u64() > Some(0))
        .collect();
    fetches.sort_by_key(|s| s["bytes"].as_u64());
    assert_eq!(fetches.len(), 6, "{r:#}");
    for (s, size) in fetches
        .iter()
        .zip([50_000, 100_000, MIB, 3 * MIB / 2, 2 * MIB, 3 * MIB])
    {
        let bytes = s["bytes"].as_u64().expect("bytes");
        assert_eq!(s["last_cumulative_bytes"].as_u64(), Some(bytes), "{s}");
        // The body, the response head, the proxy request and answer, the GET: under 1 KiB.
        assert!(
            bytes > size as u64 && bytes < size as u64 + 1024,
            "{bytes} for {size}"
        );
    }
    assert_eq!(fetches[0]["bytes"].as_u64(), Some(plain_moved));
    assert_eq!(fetches[1]["bytes"].as_u64(), Some(moved));
    // A receipt requested every 256 KiB: about a dozen for 3 MiB.
    assert!(fetches[5]["receipts"].as_u64() >= Some(8), "{}", fetches[5]);

    // Every oracle holds each fetch's top receipt (from the node and the gateway both), once.
    let expected = receipted(&r);
    oracles_count(&oracles, &expected).await;

    // A grant its buyer did not sign: the gateway will not start with it, and the node refuses
    // a session that presents it.
    let forged: serde_json::Value = {
        let mut g: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p.grant_file).expect("grant")).expect("json");
        g["credit_limit"] = serde_json::json!(1);
        g
    };
    let forged_file = w.net.write("forged.json", &forged.to_string());
    let o = run_binary_async(gateway_args(
        &w,
        &urls,
        addr(),
        &node_id,
        &p.client_file,
        &forged_file,
        &dir.join("forged-gateway"),
    ))
    .await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("the grant is not signed by the buyer it names"),
        "{}",
        stderr(&o)
    );
    let proto = operator::protocol_deployment(&w.d);
    let mut grant = backhaul_cli::gateway::read_grant_file(&p.grant_file).expect("grant");
    grant.grant.credit_limit = 1;
    let cx = ClientContext {
        deployment: proto,
        client: signing_key(&p.client),
        grant,
        timeout: Duration::from_secs(5),
    };
    let stream = TcpStream::connect(node_addr).await.expect("connect");
    match ClientSession::open(stream, cx.clone(), p.node.pubkey().to_bytes()).await {
        Err(OpenError::Refused(why)) => {
            assert!(why.contains("not signed by the buyer it names"), "{why}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a forged grant was served"),
    }

    // A buyer who signed its grant but has no credits: the node refuses, and the gateway (with
    // no other node) fails the request with the reason in its report.
    let broke = Keypair::new();
    let broke_grant = BuyerIdentity::new(proto, signing_key(&broke)).grant(
        p.client.pubkey().to_bytes(),
        0,
        1,
        i64::MAX,
        0,
    );
    let broke_file = dir.join("broke-grant.json");
    backhaul_cli::gateway::write_grant_file(&broke_file, &broke_grant).expect("write");
    let broke_addr = addr();
    let broke_dir = dir.join("broke-gateway");
    let mut broke_gw = Proc::spawn(
        "broke-gateway",
        &dir,
        gateway_args(
            &w,
            &[],
            broke_addr,
            &node_id,
            &p.client_file,
            &broke_file,
            &broke_dir,
        ),
    );
    broke_gw.wait_listening(broke_addr).await;
    let (_, answer) = raw(
        broke_addr,
        format!("CONNECT 127.0.0.1:{origin} HTTP/1.1\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 502") && text.contains("no node would open a session"),
        "{text}"
    );
    let status = broke_gw.signal(libc::SIGTERM).await;
    assert!(status.success(), "{}", broke_gw.log());
    let br = report(&broke_dir);
    let why = br["nodes"][p.node.pubkey().to_string()]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains(&format!("buyer {} has no credit account", broke.pubkey())),
        "{br:#}"
    );

    // A node that does not allow loopback refuses `localhost`.
    let strict_addr = addr();
    let mut strict = Proc::spawn(
        "strict-node",
        &dir,
        node_args(
            &w,
            &urls,
            strict_addr,
            &p.node_file,
            &dir.join("strict-data"),
            origin,
            false,
        ),
    );
    strict.wait_listening(strict_addr).await;
    let cx = ClientContext {
        grant: backhaul_cli::gateway::read_grant_file(&p.grant_file).expect("grant"),
        ..cx
    };
    let stream = TcpStream::connect(strict_addr).await.expect("connect");
    let session = ClientSession::open(stream, cx, p.node.pubkey().to_bytes())
        .await
        .expect("the session opens");
    let (mut scraper, local) = tokio::io::duplex(1 << 16);
    let relay = tokio::spawn(session.relay(local));
    scraper
        .write_all(format!("CONNECT localhost:{origin} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), scraper.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 403")
            && text.contains("localhost resolves to")
            && text.contains("which is not a public address"),
        "{text}"
    );
    drop(scraper);
    let _ = relay.await;
    strict.signal(libc::SIGTERM).await;

    // The node's metrics, then a clean stop of both.
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "backhaul_node_sessions_total{outcome=\"served\"}",
        "backhaul_node_sessions_refused_total{reason=\"grant\"}",
        "backhaul_node_receipts_countersigned_total",
        "backhaul_node_bytes_relayed_total",
        "backhaul_node_deliveries_total{result=\"settled\"}",
        "backhaul_node_queue_length",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }
    let status = gateway.signal(libc::SIGTERM).await;
    assert!(status.success(), "{}", gateway.log());
    // Its log: a line per session with its bytes and receipts, and the usage when it stopped.
    let log = gateway.log();
    assert!(
        log.contains("session ended") && log.contains("receipts=") && log.contains("usage"),
        "{log}"
    );
    assert!(
        gateway.stdout().contains("sessions"),
        "{}",
        gateway.stdout()
    );
    let status = node.signal(libc::SIGTERM).await;
    assert!(status.success(), "{}", node.log());
    let out = node.stdout();
    assert!(
        out.contains("every receipt reached every oracle"),
        "{out}\n{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_with_receipts_queued_delivers_them_after_a_restart() {
    let w = deploy(Net::start(true), START, 3 * EPOCH_SECS).await;
    let oracle_addrs: Vec<SocketAddr> = (0..3).map(|_| addr()).collect();
    let mut oracles = vec![];
    for (i, a) in oracle_addrs.iter().enumerate() {
        oracles.push(start_oracle(&w, i, *a).await);
    }
    let urls: Vec<String> = oracle_addrs.iter().map(|a| format!("http://{a}")).collect();
    wait_for("a posted price", 30, || async {
        w.net
            .account::<backhaul_sdk::state::PriceFeed>(&w.d.price_feed())
            .await
            .filter(|f| f.credits_per_token == PRICE)
    })
    .await;
    let p = parties(&w, &urls).await;
    let dir = w.net.dir.path().to_path_buf();
    let origin = origin().await;

    // The oracles go down; the node queues what it countersigns.
    for o in oracles.drain(..) {
        o.stop().await;
    }
    let node_addr = addr();
    let data = dir.join("node-data");
    let args = node_args(&w, &urls, node_addr, &p.node_file, &data, origin, true);
    let mut node = Proc::spawn("node", &dir, args.clone());
    node.wait_listening(node_addr).await;
    // The gateway sends nothing to the oracles: whatever they count came from the node.
    let gw_addr = addr();
    let gw_dir = dir.join("gateway");
    let node_id = format!("{}@{node_addr}", p.node.pubkey());
    let mut gateway = Proc::spawn(
        "gateway",
        &dir,
        gateway_args(
            &w,
            &[],
            gw_addr,
            &node_id,
            &p.client_file,
            &p.grant_file,
            &gw_dir,
        ),
    );
    gateway.wait_listening(gw_addr).await;
    curl_fetch(gw_addr, origin, 2 * MIB, Via::Socks, &dir.join("a.bin")).await;
    curl_fetch(gw_addr, origin, MIB, Via::Connect, &dir.join("b.bin")).await;
    let expected = receipted(&report_with(&gw_dir, 2, &[&node, &gateway]).await);
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert!(expected.values().all(|(seq, _)| *seq >= 4), "{expected:?}");

    // Killed before anything could be delivered.
    let queued = backhaul_node::queue::Queue::open(&data)
        .await
        .expect("the node's queue");
    let n = queued.len().await.expect("length");
    assert!(n >= 8, "{n} receipts queued");
    drop(queued);
    node.signal(libc::SIGKILL).await;

    // The oracles come back, then the node: every session is counted once, at its top receipt.
    for (i, a) in oracle_addrs.iter().enumerate() {
        oracles.push(start_oracle(&w, i, *a).await);
    }
    let mut node = Proc::spawn("node-again", &dir, args);
    node.wait_listening(node_addr).await;
    oracles_count(&oracles, &expected).await;
    for o in &oracles {
        assert_eq!(tops(o).await.len(), expected.len());
    }
    let status = node.signal(libc::SIGTERM).await;
    assert!(status.success(), "{}", node.log());
    assert!(
        node.stdout().contains("every receipt reached every oracle"),
        "{}",
        node.log()
    );
    let _ = gateway.signal(libc::SIGTERM).await;
}

#[test]
fn the_demo_carries_real_traffic_by_default_and_counts_what_the_node_metered() {
    let out = run_binary(&[
        "demo", "--epochs", "1", "--nodes", "3", "--firms", "1", "--output", "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["audit"]["passed"], true, "{}", r["audit"]);
    let e = &r["epochs"][0];
    assert_eq!(e["status"], "finalized", "{e}");
    let real = &e["real"];
    assert_eq!(real["body_bytes"].as_u64(), Some(4 << 20), "{e}");
    let bytes = real["bytes"].as_u64().expect("bytes");
    assert!(bytes > 4 << 20 && bytes < (4 << 20) + 1024, "{e}");
    assert!(real["receipts"].as_u64() >= Some(4), "{e}");
    // The real session's bytes are counted with the simulated ones, every byte signed; the
    // node carrying them carries nothing else, and its epoch counts exactly what it metered.
    assert_eq!(e["bytes_counted"], e["bytes_signed"], "{e}");
    assert_eq!(real["counted"].as_u64(), Some(bytes), "{e}");
    assert!(
        stderr(&out).contains("epoch 0: real traffic: 4194304 bytes fetched through the gateway"),
        "{}",
        stderr(&out)
    );
}

/// The relay's metrics once `name` is at least `min` (at most 20 s).
async fn relay_metric_at_least(metrics: SocketAddr, name: &str, min: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = match reqwest::get(format!("http://{metrics}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if value >= min {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {min}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (at most `secs`) until `proc`'s log contains `text`.
async fn wait_log(proc: &mut Proc, text: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !proc.log().contains(text) {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("{} exited ({status}):\n{}", proc.name, proc.log());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never logged {text:?}:\n{}",
            proc.name,
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_no_port_behind_a_relay_is_found_in_the_directory_and_serves_a_curl() {
    let w = deploy(Net::start(true), START, 3 * EPOCH_SECS).await;
    let (_oracles, urls) = start_oracles(&w, PRICE).await;
    let p = parties(&w, &urls).await;
    let dir = w.net.dir.path().to_path_buf();
    let origin = origin().await;

    let relay_addr = addr();
    let relay_args = |metrics: SocketAddr| -> Vec<String> {
        vec![
            "relay".into(),
            "--listen".into(),
            relay_addr.to_string(),
            "--metrics-listen".into(),
            metrics.to_string(),
        ]
    };
    let relay_metrics = addr();
    let mut relay = Proc::spawn("relay", &dir, relay_args(relay_metrics));
    relay.wait_listening(relay_addr).await;

    // The node listens nowhere: `--listen off --relay`, and advertises the relay.
    let unused = addr();
    let mut args = node_args(
        &w,
        &urls,
        unused,
        &p.node_file,
        &dir.join("node-data"),
        origin,
        true,
    );
    let at = args.iter().position(|a| a == "--listen").expect("--listen") + 1;
    args[at] = "off".into();
    args.extend(["--relay".to_string(), relay_addr.to_string()]);
    let mut node = Proc::spawn("node", &dir, args);
    wait_log(&mut node, "linked to the relay", 30).await;
    wait_log(&mut node, "advert stored", 30).await;
    assert!(
        TcpStream::connect(unused).await.is_err(),
        "the node opened no port"
    );

    // The gateway knows no node: it reads the directory.
    let gw_addr = addr();
    let gw_dir = dir.join("gateway");
    let mut args = gateway_args(
        &w,
        &urls,
        gw_addr,
        "unused",
        &p.client_file,
        &p.grant_file,
        &gw_dir,
    );
    let at = args.iter().position(|a| a == "--node").expect("--node");
    args.drain(at..at + 2);
    args.push("--directory".into());
    let mut gateway = Proc::spawn("gateway", &dir, args);
    gateway.wait_listening(gw_addr).await;
    wait_log(&mut gateway, "1 node(s) besides --node", 30).await;
    curl_fetch(gw_addr, origin, 300 * 1024, Via::Socks, &dir.join("a.bin")).await;
    let report = report_with(&gw_dir, 1, &[&node, &gateway]).await;
    let key = p.node.pubkey().to_string();
    assert_eq!(report["nodes"][&key]["sessions"], 1, "{report}");
    assert!(
        report["nodes"][&key]["receipts"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    // The relay's metrics: one node linked, one session spliced, its bytes (counted when the
    // splice ends).
    let spliced = relay_metric_at_least(
        relay_metrics,
        "backhaul_relay_bytes_spliced_total",
        300.0 * 1024.0,
    )
    .await;
    assert!(
        spliced.contains("backhaul_relay_nodes_linked 1"),
        "{spliced}"
    );
    assert!(
        spliced.contains("backhaul_relay_sessions_spliced_total 1"),
        "{spliced}"
    );
    assert!(
        spliced.contains("backhaul_relay_registrations_total{result=\"ok\"}"),
        "{spliced}"
    );

    // The relay dies and comes back on the same address: the node links again after its
    // backoff, and sessions work again.
    relay.signal(libc::SIGKILL).await;
    let relay_metrics = addr();
    let mut relay = Proc::spawn("relay-again", &dir, relay_args(relay_metrics));
    relay.wait_listening(relay_addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while node.log().matches("linked to the relay").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never linked again:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.log().contains("no link to the relay; linking again"),
        "{}",
        node.log()
    );
    curl_fetch(gw_addr, origin, 200 * 1024, Via::Socks, &dir.join("b.bin")).await;
    let report = report_with(&gw_dir, 2, &[&node, &gateway, &relay]).await;
    assert_eq!(report["nodes"][&key]["sessions"], 2, "{report}");
    let spliced = relay_metric_at_least(
        relay_metrics,
        "backhaul_relay_bytes_spliced_total",
        200.0 * 1024.0,
    )
    .await;
    assert!(
        spliced.contains("backhaul_relay_sessions_spliced_total 1"),
        "{spliced}"
    );
    let status = node.signal(libc::SIGTERM).await;
    assert!(status.success(), "{}", node.log());
    let _ = gateway.signal(libc::SIGTERM).await;
    let _ = relay.signal(libc::SIGTERM).await;
}

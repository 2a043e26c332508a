//! Throughput of one stream over a rate-limited link: a direct TCP transfer across the link
//! against the same transfer through a gateway session and a node across the same link, measured
//! in the same run, then both again with the shaping removed.
//!
//! The bench makes two network namespaces joined by a veth pair (10.231.0.1 on the near side,
//! 10.231.0.2 on the far side) and shapes both ends of the pair with `tc` (netem for the delay,
//! tbf for the rate). The origin and the node run on the far side (one process, started with
//! `ip netns exec`), the client and the gateway on the near side (one process per transfer). So the
//! link sits between the gateway and the node: the firm-to-node hop is the one that crosses the
//! internet, while a node and the sites it fetches from are one hop of the node's own uplink.
//! The direct transfer crosses the same link: client (near) to origin (far).
//!
//! `cargo bench -p backhaul-node --bench shaped`, as root (it makes namespaces; it needs `ip`
//! and `tc`, and refuses to start without them). `BACKHAUL_BENCH_MIB` sets the size over the
//! shaped link (64 by default), `BACKHAUL_BENCH_UNSHAPED_MIB` over the unshaped one (512),
//! `BACKHAUL_BENCH_RATE` the rate (`100mbit`), `BACKHAUL_BENCH_DELAY_MS` the one-way delay netem
//! adds on each side (10, so 20 ms round trip; a kernel without netem gets tbf alone, and the
//! report says so). Traffic only goes to addresses in the namespaces the bench made; they are
//! deleted at the end, on failure and on Ctrl-C.

mod common;

use backhaul_node::client::ClientContext;
use backhaul_node::egress::Policy;
use backhaul_node::gateway::{Gateway, GatewayConfig, NodeAddr};
use backhaul_node::server::{Throttled, Traffic};
use backhaul_node::session::{self, BoxFuture, NodeContext, ReceiptStore};
use backhaul_protocol::{ClientGrant, SignedReceipt};
use common::{cpu, Any, D};
use ed25519_dalek::SigningKey;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NEAR_IP: &str = "10.231.0.1";
const FAR_IP: &str = "10.231.0.2";

struct Discard;
impl ReceiptStore for Discard {
    fn store(&self, _: SignedReceipt) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("--far") => far(&args[1..]),
        Some("--near") => near(&args[1..]),
        // `cargo test --benches` runs bench targets without `--bench`: nothing to do then.
        _ if !args.iter().any(|a| a == "--bench") => {
            println!("the shaped benchmark runs under `cargo bench` only");
            Ok(())
        }
        _ => orchestrate(),
    };
    if let Err(e) = code {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The far side: the origin and the node.

/// `--far BYTES`: serves the origin and the node, prints `ready ORIGIN_PORT NODE_PORT`, then
/// answers `cpu` on stdin with `cpu SECONDS` until stdin closes.
fn far(args: &[String]) -> Result<(), String> {
    let bytes: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("--far BYTES")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (origin_port, node_port) = rt.block_on(async move {
        let origin = TcpListener::bind("0.0.0.0:0")
            .await
            .map_err(|e| e.to_string())?;
        let origin_port = origin.local_addr().map_err(|e| e.to_string())?.port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = origin.accept().await {
                tokio::spawn(async move {
                    // `GET BYTES\r\n`, or `GET\r\n` for the default size.
                    let mut req = [0u8; 256];
                    let n = s.read(&mut req).await.unwrap_or(0);
                    let bytes = std::str::from_utf8(&req[..n])
                        .ok()
                        .and_then(|r| r.trim().strip_prefix("GET ")?.parse().ok())
                        .unwrap_or(bytes);
                    let chunk = vec![b'x'; 1 << 20];
                    let mut left = bytes;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if s.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        let mut policy = Policy {
            allow_loopback: true,
            ..Policy::default()
        };
        policy.ports.insert(origin_port);
        // As `backhaul node serve` has it: a receipt asked for every MiB, at most 4 MiB ahead.
        let cx = Arc::new(NodeContext {
            deployment: D,
            node: node_key(),
            genesis_ts: 0,
            epoch_length_secs: 86_400 * 365 * 100,
            receipt_every_bytes: 1 << 20,
            max_unreceipted_bytes: 4 << 20,
            timeout: Duration::from_secs(10),
            policy,
            grants: Arc::new(Any),
            receipts: Arc::new(Discard),
            clock: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            }),
        });
        let node = TcpListener::bind("0.0.0.0:0")
            .await
            .map_err(|e| e.to_string())?;
        let node_port = node.local_addr().map_err(|e| e.to_string())?.port();
        // As the node service serves a connection: no Nagle, through its (unlimited) bucket.
        let traffic = Arc::new(Traffic::new(0, "2000-01".into(), 0));
        tokio::spawn(async move {
            while let Ok((s, _)) = node.accept().await {
                let (cx, traffic) = (cx.clone(), traffic.clone());
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let _ = session::serve(Throttled::new(s, traffic), &cx).await;
                });
            }
        });
        Ok::<_, String>((origin_port, node_port))
    })?;
    println!("ready {origin_port} {node_port}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let _guard = rt.enter();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "cpu" {
            println!("cpu {}", cpu());
            std::io::stdout().flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The near side: one transfer, direct or through a gateway.

/// Bytes the veth device has moved both ways so far (link level, headers included).
fn link_bytes(dev: &str) -> u64 {
    ["rx_bytes", "tx_bytes"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(format!("/sys/class/net/{dev}/statistics/{f}"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

async fn drain(s: &mut TcpStream) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    while let Ok(k) = s.read(&mut buf).await {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    n
}

/// `--near direct|through DEV ORIGIN_PORT NODE_PORT BYTES`: prints
/// `result SECONDS CPU_SECONDS BYTES LINK_BYTES RECEIPTS COUNTED`.
fn near(args: &[String]) -> Result<(), String> {
    let [mode, dev, origin_port, node_port, bytes] = args else {
        return Err("--near direct|through DEV ORIGIN_PORT NODE_PORT BYTES".into());
    };
    let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    let (origin_port, node_port, bytes) = (num(origin_port)?, num(node_port)?, num(bytes)?);
    let origin_port = u16::try_from(origin_port).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let line = rt.block_on(async move {
        if mode == "direct" {
            let (t0, c0, l0) = (Instant::now(), cpu(), link_bytes(dev));
            let mut s = TcpStream::connect((FAR_IP, origin_port))
                .await
                .map_err(|e| format!("connect to the origin: {e}"))?;
            s.write_all(format!("GET {bytes}\r\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let got = drain(&mut s).await;
            let (secs, cpus, link) = (t0.elapsed().as_secs_f64(), cpu() - c0, link_bytes(dev) - l0);
            if got != bytes {
                return Err(format!("direct: {got} of {bytes} bytes"));
            }
            return Ok(format!("result {secs} {cpus} {got} {link} 0 {got}"));
        }
        let node = node_key();
        let buyer = SigningKey::from_bytes(&[3; 32]);
        let client = SigningKey::from_bytes(&[4; 32]);
        let grant = ClientGrant {
            buyer: buyer.verifying_key().to_bytes(),
            client: client.verifying_key().to_bytes(),
            epoch: 0,
            issued_at: 1,
            expires_at: i64::MAX,
            credit_limit: 0,
        }
        .sign(&D, &buyer);
        let config = GatewayConfig {
            nodes: vec![NodeAddr {
                key: node.verifying_key().to_bytes(),
                addr: format!("{FAR_IP}:{node_port}"),
            }],
            client: ClientContext {
                deployment: D,
                client,
                grant,
                timeout: Duration::from_secs(10),
            },
            report: None,
            status_every: Duration::from_secs(3_600),
        };
        let gateway = Gateway::bind("127.0.0.1:0".parse().expect("addr"), config, None)
            .await
            .map_err(|e| e.to_string())?;
        let gw = gateway.local_addr().map_err(|e| e.to_string())?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(gateway.run(async {
            let _ = stop_rx.await;
        }));
        let (t0, c0, l0) = (Instant::now(), cpu(), link_bytes(dev));
        let mut s = TcpStream::connect(gw).await.map_err(|e| e.to_string())?;
        s.write_all(
            format!("CONNECT 127.0.0.1:{origin_port} HTTP/1.1\r\n\r\nGET {bytes}\r\n").as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let got = drain(&mut s).await;
        drop(s);
        let (secs, cpus) = (t0.elapsed().as_secs_f64(), cpu() - c0);
        let _ = stop_tx.send(());
        let usage = running.await.map_err(|e| e.to_string())?;
        let link = link_bytes(dev) - l0;
        let answer = b"HTTP/1.1 200 Connection established\r\n\r\n".len() as u64;
        if got != bytes + answer {
            return Err(format!("through: {got} of {} bytes", bytes + answer));
        }
        Ok(format!(
            "result {secs} {cpus} {} {link} {} {}",
            got - answer,
            usage.receipts,
            usage.bytes
        ))
    })?;
    println!("{line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The orchestrator, in the initial namespace.

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The namespaces and the veth pair; deleted when dropped (deleting a namespace deletes its end of
/// the pair, and with it the other end).
struct Link {
    near: String,
    far: String,
    near_dev: String,
    far_dev: String,
}

impl Link {
    fn make() -> Result<Link, String> {
        let id = std::process::id();
        let link = Link {
            near: format!("bhbench-near-{id}"),
            far: format!("bhbench-far-{id}"),
            near_dev: format!("bhn{id}"),
            far_dev: format!("bhf{id}"),
        };
        run("ip", &["netns", "add", &link.near])?;
        run("ip", &["netns", "add", &link.far])?;
        run(
            "ip",
            &[
                "link",
                "add",
                &link.near_dev,
                "netns",
                &link.near,
                "type",
                "veth",
                "peer",
                "name",
                &link.far_dev,
                "netns",
                &link.far,
            ],
        )?;
        for (ns, dev, ip) in [
            (&link.near, &link.near_dev, NEAR_IP),
            (&link.far, &link.far_dev, FAR_IP),
        ] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev],
            )?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(link)
    }

    /// tbf for the rate on both ends, under netem for the delay when the kernel has netem (and
    /// the delay is not 0). What was set up, for the report.
    fn shape(&self, rate: &str, delay_ms: u64) -> Result<String, String> {
        let tbf = ["tbf", "rate", rate, "burst", "64kb", "latency", "50ms"];
        let delayed = delay_ms > 0;
        for (ns, dev) in [(&self.near, &self.near_dev), (&self.far, &self.far_dev)] {
            let delay = format!("{delay_ms}ms");
            let root = ["-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:"];
            if delayed {
                let netem = [&root[..], &["netem", "delay", &delay, "limit", "100000"]].concat();
                if let Err(e) = run("tc", &netem) {
                    eprintln!("no delay: netem is not available ({e}); tbf alone shapes the link");
                    // The other end may have netem already: start both again without it.
                    let _ = self.unshape();
                    return self.shape(rate, 0);
                }
                let under = [
                    "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:",
                ];
                run("tc", &[&under[..], &tbf[..]].concat())?;
            } else {
                run("tc", &[&root[..], &tbf[..]].concat())?;
            }
        }
        Ok(if delayed {
            format!(
                "tbf {rate} (burst 64kb, latency 50ms) under netem delay {delay_ms} ms, each way"
            )
        } else {
            format!("tbf {rate} (burst 64kb, latency 50ms) each way, no added delay")
        })
    }

    fn unshape(&self) -> Result<(), String> {
        for (ns, dev) in [(&self.near, &self.near_dev), (&self.far, &self.far_dev)] {
            let _ = run("tc", &["-n", ns, "qdisc", "del", "dev", dev, "root"]);
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.near]);
        let _ = run("ip", &["netns", "del", &self.far]);
    }
}

/// The far process; killed when dropped.
struct Far {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Far {
    fn cpu(&mut self) -> Result<f64, String> {
        let stdin = self.child.stdin.as_mut().ok_or("the far side's stdin")?;
        writeln!(stdin, "cpu").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.out.read_line(&mut line).map_err(|e| e.to_string())?;
        line.trim()
            .strip_prefix("cpu ")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("the far side answered {line:?}"))
    }
}

impl Drop for Far {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One transfer's figures.
struct Run {
    secs: f64,
    near_cpu: f64,
    far_cpu: f64,
    bytes: u64,
    link: u64,
    receipts: u64,
    counted: u64,
}

fn transfer(
    link: &Link,
    far: &mut Far,
    exe: &str,
    mode: &str,
    ports: (u16, u16),
    bytes: u64,
) -> Result<Run, String> {
    let far0 = far.cpu()?;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &link.near,
            exe,
            "--near",
            mode,
            &link.near_dev,
        ])
        .args([ports.0.to_string(), ports.1.to_string(), bytes.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    let far_cpu = far.cpu()? - far0;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("the {mode} transfer failed: {}", text.trim()));
    }
    let f: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .ok_or_else(|| format!("the {mode} transfer printed {text:?}"))?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [secs, near_cpu, got, link_bytes, receipts, counted] = f[..] else {
        return Err(format!("the {mode} transfer printed {text:?}"));
    };
    Ok(Run {
        secs,
        near_cpu,
        far_cpu,
        bytes: got as u64,
        link: link_bytes as u64,
        receipts: receipts as u64,
        counted: counted as u64,
    })
}

fn orchestrate() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the shaped benchmark makes network namespaces and shapes a veth pair with \
             tc: run it as root (sudo -E cargo bench -p backhaul-node --bench shaped)"
                .into(),
        );
    }
    for (tool, arg) in [("ip", "-V"), ("tc", "-V")] {
        if Command::new(tool).arg(arg).output().is_err() {
            return Err(format!(
                "`{tool}` is not installed (iproute2): the shaped benchmark needs `ip` and `tc`"
            ));
        }
    }
    let mib: u64 = std::env::var("BACKHAUL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rate = std::env::var("BACKHAUL_BENCH_RATE").unwrap_or_else(|_| "100mbit".into());
    let delay_ms: u64 = std::env::var("BACKHAUL_BENCH_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let unshaped_mib: u64 = std::env::var("BACKHAUL_BENCH_UNSHAPED_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let exe = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .to_string_lossy()
        .into_owned();

    let link = Link::make()?;
    // On Ctrl-C the namespaces are deleted before the process exits.
    {
        let names = (link.near.clone(), link.far.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
                let _ = run("ip", &["netns", "del", &names.0]);
                let _ = run("ip", &["netns", "del", &names.1]);
                eprintln!("interrupted: the bench's namespaces are deleted");
                std::process::exit(130);
            }
        });
    }
    let result = measure(&link, &exe, (mib, unshaped_mib), &rate, delay_ms);
    drop(link);
    result
}

fn measure(
    link: &Link,
    exe: &str,
    (mib, unshaped_mib): (u64, u64),
    rate: &str,
    delay_ms: u64,
) -> Result<(), String> {
    let bytes = mib << 20;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &link.far, exe, "--far", &bytes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    let out = child.stdout.take().ok_or("the far side's stdout")?;
    let mut far = Far {
        out: BufReader::new(out),
        child,
    };
    let mut line = String::new();
    far.out.read_line(&mut line).map_err(|e| e.to_string())?;
    let ports: Vec<u16> = line
        .trim()
        .strip_prefix("ready ")
        .ok_or_else(|| format!("the far side printed {line:?}"))?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let [origin, node] = ports[..] else {
        return Err(format!("the far side printed {line:?}"));
    };
    let ports = (origin, node);

    let shaped = link.shape(rate, delay_ms)?;
    let shaped_direct = transfer(link, &mut far, exe, "direct", ports, bytes)?;
    let shaped_through = transfer(link, &mut far, exe, "through", ports, bytes)?;
    link.unshape()?;
    let veth_direct = transfer(link, &mut far, exe, "direct", ports, unshaped_mib << 20)?;
    let veth_through = transfer(link, &mut far, exe, "through", ports, unshaped_mib << 20)?;

    let mbit = |r: &Run| r.bytes as f64 * 8.0 / r.secs / 1e6;
    let per_gib = |cpu: f64, r: &Run| cpu / (r.bytes as f64 / (1u64 << 30) as f64);
    println!(
        "one stream ({mib} MiB shaped, {unshaped_mib} MiB unshaped), client and gateway in one \
         namespace, node and origin in another, one veth pair between them"
    );
    println!("shaped: {shaped}");
    println!();
    println!(
        "| link | path | seconds | Mbit/s | of direct | CPU s per GiB, near (client, gateway) | CPU s per GiB, far (origin, node) | link bytes per payload byte |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let shaped = rate.to_string();
    for (name, d, t) in [
        (shaped.as_str(), &shaped_direct, &shaped_through),
        ("veth, unshaped", &veth_direct, &veth_through),
    ] {
        for (path, r) in [("direct TCP", d), ("gateway session and node", t)] {
            println!(
                "| {name} | {path} | {:.2} | {:.1} | {:.3} | {:.2} | {:.2} | {:.4} |",
                r.secs,
                mbit(r),
                d.secs / r.secs,
                per_gib(r.near_cpu, r),
                per_gib(r.far_cpu, r),
                r.link as f64 / r.bytes as f64,
            );
        }
    }
    println!();
    for (name, t) in [
        (shaped.as_str(), &shaped_through),
        ("unshaped", &veth_through),
    ] {
        // On the channel per receipt: the request (a frame of about 10 bytes), the receipt
        // (about 177), the countersignature (about 73), each with 2 + 16 bytes of framing.
        let receipt_bytes = t.receipts * (177 + 10 + 73 + 3 * 18);
        println!(
            "{name}: {} receipts, about {receipt_bytes} bytes: {:.4}% of the {} bytes counted",
            t.receipts,
            receipt_bytes as f64 * 100.0 / t.counted.max(1) as f64,
            t.counted
        );
    }
    println!(
        "ratio through the session to direct over the shaped link: {:.3} (goal 0.90)",
        shaped_direct.secs / shaped_through.secs
    );
    Ok(())
}

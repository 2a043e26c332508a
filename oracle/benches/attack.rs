//! Honest ingest throughput while an attacker sends junk, as a ratio of the unattacked throughput
//! measured in the same run, with the process's memory.
//!
//! `cargo bench -p backhaul-oracle --bench attack`
//!
//! Every phase starts a fresh oracle in this process (`Oracle` on a `MemoryChain`, SQLite in a
//! temporary directory, HTTP on 127.0.0.1) with the per-address limit applied to loopback
//! (`limit_loopback_addresses`). The honest sender posts its bindings and grants from 127.0.0.1
//! (its buyers have funded credit accounts), then the same pre-signed receipts in every phase
//! over a few connections for a fixed time, each from its own address (127.0.0.10 and up: honest
//! nodes are many, each under the per-address limits), each connection sending its next request when the
//! last one is answered (a `429` or `503` is retried after 50 ms until the time is up). The
//! attacker, from 127.0.0.2, first empties its address's token bucket (the steady state of a
//! sustained attack), then sends one kind of junk at a fixed rate: a new request on schedule
//! whether or not the earlier ones were answered. Junk is signed before the phase, so the
//! attacker's signing costs the oracle's cores nothing; stalling kinds open
//! `BACKHAUL_ATTACK_STALLED` connections at once (spending the address's burst on them), then
//! more at the rate.
//!
//! Attacked and unattacked phases alternate; an attacked phase's rate is a share of the honest
//! request rate of the unattacked phase just before it, and its ratio is to the mean throughput
//! of the unattacked phases just before and just after it, so that the machine's other load
//! drifts as little as possible in between. Phases: each kind at `BACKHAUL_ATTACK_PCT` percent;
//! the kind sent at a rate with the lowest ratio at each rate of `BACKHAUL_ATTACK_SWEEP`; stalled
//! bodies held at once, by count (`BACKHAUL_ATTACK_STALL_SWEEP`), none added.
//!
//! Environment (defaults in brackets): `BACKHAUL_ATTACK_SECS` honest sending time per phase [5],
//! `BACKHAUL_ATTACK_RECEIPTS` honest receipts signed [150000], `BACKHAUL_ATTACK_BATCH` honest
//! receipts per request [1000], `BACKHAUL_ATTACK_CONNECTIONS` honest connections [4],
//! `BACKHAUL_ATTACK_JUNK_BATCH` items per junk request [the honest batch], `BACKHAUL_ATTACK_PCT`
//! [10], `BACKHAUL_ATTACK_SWEEP` percentages [10,25,50,100,200,500], `BACKHAUL_ATTACK_ADDRESS_RATE`
//! the per-address limit in requests per second [50, the oracle's default],
//! `BACKHAUL_ATTACK_ADDRESS_ITEMS` the per-address limit in items per second [10000, half the
//! oracle's default, above what each honest connection sends],
//! `BACKHAUL_ATTACK_STALLED` [256], `BACKHAUL_ATTACK_STALL_SWEEP` [32,64],
//! `BACKHAUL_ATTACK_KINDS` a comma-separated subset of the kinds [all].
//!
//! Nothing is asserted about timings; the figures are printed.

use backhaul_oracle::chain::{MemoryChain, MemoryState};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::api::{BatchResponse, ItemStatus};
use backhaul_protocol::{
    ClientGrant, Deployment, NodeBinding, SignedReceipt, UsageReceipt, SIGNED_RECEIPT_LEN,
};
use ed25519_dalek::SigningKey;
use solana_sdk::pubkey::Pubkey;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const HONEST_NODES: usize = 1_000;
const HONEST_CLIENTS: usize = 1_000;
const HONEST_BUYERS: usize = 10;
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Junk requests in flight at most; a request due beyond it is counted as not sent.
const ATTACK_IN_FLIGHT: usize = 1_024;
/// Most items a binding or grant request may hold (`MAX_BINDINGS_PER_REQUEST`).
const MAX_BINDINGS_OR_GRANTS: usize = 1_000;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn key(i: u64, tag: u8) -> SigningKey {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&b)
}

fn pk(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

/// `VmRSS` and `VmHWM` of this process, MiB.
fn memory() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user and system) this process has used, seconds.
fn cpu_secs() -> f64 {
    // SAFETY: `getrusage` writes one `rusage` into the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Resets `VmHWM` to the current resident size (Linux 4.0 and later); false if it could not.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f(i)` for `i` in `0..n` on every core, in order.
fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || (t * per..((t + 1) * per).min(n)).map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    BadSignatures,
    FreshKeys,
    OutOfRange,
    Equivocating,
    FreshBindings,
    UnfundedGrants,
    StalledHeaders,
    StalledBodies,
    BadBodies,
}

const KINDS: [Kind; 9] = [
    Kind::BadSignatures,
    Kind::FreshKeys,
    Kind::OutOfRange,
    Kind::Equivocating,
    Kind::FreshBindings,
    Kind::UnfundedGrants,
    Kind::StalledHeaders,
    Kind::StalledBodies,
    Kind::BadBodies,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::BadSignatures => "bad-signatures",
            Kind::FreshKeys => "fresh-keys",
            Kind::OutOfRange => "out-of-range",
            Kind::Equivocating => "equivocating",
            Kind::FreshBindings => "fresh-bindings",
            Kind::UnfundedGrants => "unfunded-grants",
            Kind::StalledHeaders => "stalled-headers",
            Kind::StalledBodies => "stalled-bodies",
            Kind::BadBodies => "bad-bodies",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::BadSignatures => "receipts naming honest keys, bodies altered after signing",
            Kind::FreshKeys => "receipts signed by a new node and client key each",
            Kind::OutOfRange => "signed receipts with a u64 field >= 2^63",
            Kind::Equivocating => "one session and sequence, different bytes, 16 key pairs",
            Kind::FreshBindings => "bindings of a new node and operator key each",
            Kind::UnfundedGrants => "grants of a new buyer key each, no credit account",
            Kind::StalledHeaders => "connections sending half a header, held open",
            Kind::StalledBodies => "full headers, 1 KiB of a 1 MB body, held open",
            Kind::BadBodies => "oversized, too many items, wrong length, wrong type, garbage",
        }
    }

    fn stalls(self) -> bool {
        matches!(self, Kind::StalledHeaders | Kind::StalledBodies)
    }
}

/// A prepared junk request.
struct Junk {
    path: &'static str,
    content_type: &'static str,
    body: Arc<Vec<u8>>,
}

fn octets(path: &'static str, body: Vec<u8>) -> Junk {
    Junk {
        path,
        content_type: "application/octet-stream",
        body: Arc::new(body),
    }
}

/// `count` junk requests of `kind`, each of `batch` items where it has items.
fn junk(kind: Kind, count: usize, batch: usize, d: &Deployment) -> Vec<Junk> {
    let tag = |j: usize, i: usize| ((j as u64) << 20) | i as u64;
    match kind {
        Kind::BadSignatures => {
            // Signed once, then every body altered: each signature is well formed and must be
            // checked in full before it fails.
            let signed: Vec<SignedReceipt> = parallel(batch, |i| {
                UsageReceipt {
                    epoch: 0,
                    session_id: [0xBA; 16],
                    node: [0; 32],
                    client: [0; 32],
                    buyer: [0; 32],
                    sequence: 1,
                    cumulative_bytes: 10_000_000,
                    session_age_secs: 60,
                }
                .sign_both(d, &key(i as u64, 0x91), &key(i as u64, 0x92))
            });
            let nodes: Vec<[u8; 32]> = (0..HONEST_NODES as u64).map(|i| pk(&key(i, 1))).collect();
            let clients: Vec<[u8; 32]> =
                (0..HONEST_CLIENTS as u64).map(|i| pk(&key(i, 2))).collect();
            (0..count)
                .map(|j| {
                    let items: Vec<SignedReceipt> = signed
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let mut s = *s;
                            s.receipt.node = nodes[i % nodes.len()];
                            s.receipt.client = clients[(i / 7) % clients.len()];
                            s.receipt.session_id[..8].copy_from_slice(&tag(j, i).to_le_bytes());
                            s
                        })
                        .collect();
                    octets("/v1/receipts", borsh::to_vec(&items).expect("encode"))
                })
                .collect()
        }
        Kind::FreshKeys | Kind::OutOfRange | Kind::Equivocating => {
            let pairs: Vec<(SigningKey, SigningKey)> =
                (0..16).map(|p| (key(p, 0xA1), key(p, 0xA2))).collect();
            parallel(count, |j| {
                let items: Vec<SignedReceipt> = (0..batch)
                    .map(|i| {
                        let t = tag(j, i);
                        let mut session_id = [0xF0; 16];
                        session_id[..8].copy_from_slice(&t.to_le_bytes());
                        let mut buyer = [0xA3; 32];
                        buyer[..8].copy_from_slice(&t.to_le_bytes());
                        let mut r = UsageReceipt {
                            epoch: 0,
                            session_id,
                            node: [0; 32],
                            client: [0; 32],
                            buyer,
                            sequence: 1,
                            cumulative_bytes: 10_000_000,
                            session_age_secs: 60,
                        };
                        let (node, client) = match kind {
                            Kind::FreshKeys => (key(t, 0xA4), key(t, 0xA5)),
                            Kind::OutOfRange => {
                                let big = 1u64 << 63 | t;
                                match i % 4 {
                                    0 => r.epoch = big,
                                    1 => r.sequence = big,
                                    2 => r.cumulative_bytes = big,
                                    _ => r.session_age_secs = big,
                                }
                                pairs[i % pairs.len()].clone()
                            }
                            _ => {
                                // Every item of every request at one session of its pair.
                                let p = j % pairs.len();
                                r.session_id = [p as u8; 16];
                                r.sequence = 5;
                                r.cumulative_bytes = 1 + t;
                                pairs[p].clone()
                            }
                        };
                        r.node = pk(&node);
                        r.client = pk(&client);
                        r.sign_both(d, &client, &node)
                    })
                    .collect();
                octets("/v1/receipts", borsh::to_vec(&items).expect("encode"))
            })
        }
        Kind::FreshBindings => parallel(count, |j| {
            let now = backhaul_oracle::clock::now();
            let items: Vec<_> = (0..batch.min(MAX_BINDINGS_OR_GRANTS))
                .map(|i| {
                    let (node, operator) = (key(tag(j, i), 0xB1), key(tag(j, i), 0xB2));
                    NodeBinding {
                        node: pk(&node),
                        operator: pk(&operator),
                        epoch: 0,
                        // Recent, as the oracle requires.
                        issued_at: now,
                    }
                    .sign(d, &node, &operator)
                })
                .collect();
            octets("/v1/bindings", borsh::to_vec(&items).expect("encode"))
        }),
        Kind::UnfundedGrants => parallel(count, |j| {
            let items: Vec<_> = (0..batch.min(MAX_BINDINGS_OR_GRANTS))
                .map(|i| {
                    let buyer = key(tag(j, i), 0xC1);
                    let mut client = [0xC2; 32];
                    client[..8].copy_from_slice(&tag(j, i).to_le_bytes());
                    ClientGrant {
                        buyer: pk(&buyer),
                        client,
                        epoch: 0,
                        issued_at: 1,
                        expires_at: i64::MAX,
                        credit_limit: 0,
                    }
                    .sign(d, &buyer)
                })
                .collect();
            octets("/v1/grants", borsh::to_vec(&items).expect("encode"))
        }),
        Kind::BadBodies => {
            let max_body = Settings::default().max_body_bytes;
            let mut wrong_length = (batch as u32).to_le_bytes().to_vec();
            wrong_length.resize(4 + (batch - 1) * SIGNED_RECEIPT_LEN, 0x33);
            let too_many = 10_001usize;
            let mut over_count = (too_many as u32).to_le_bytes().to_vec();
            over_count.resize(4 + too_many * SIGNED_RECEIPT_LEN, 0x44);
            let variants = [
                Arc::new(vec![0x55; max_body + 1]),
                Arc::new(over_count),
                Arc::new(wrong_length),
                Arc::new(vec![0x66; 4 + SIGNED_RECEIPT_LEN]),
                Arc::new((0..1024u32).map(|i| (i * 7 % 251) as u8).collect()),
            ];
            (0..count)
                .map(|j| Junk {
                    path: "/v1/receipts",
                    content_type: if j % variants.len() == 3 {
                        "application/json"
                    } else {
                        "application/octet-stream"
                    },
                    body: variants[j % variants.len()].clone(),
                })
                .collect()
        }
        Kind::StalledHeaders | Kind::StalledBodies => vec![],
    }
}

/// The honest workload, signed once and sent to every phase's fresh oracle.
struct Honest {
    bindings: Vec<u8>,
    grants: Vec<u8>,
    buyers: Vec<[u8; 32]>,
    bodies: Arc<Vec<Vec<u8>>>,
}

fn honest(count: usize, batch: usize, d: &Deployment) -> Honest {
    let nodes: Vec<SigningKey> = (0..HONEST_NODES as u64).map(|i| key(i, 1)).collect();
    let clients: Vec<SigningKey> = (0..HONEST_CLIENTS as u64).map(|i| key(i, 2)).collect();
    let buyers: Vec<SigningKey> = (0..HONEST_BUYERS as u64).map(|i| key(i, 4)).collect();
    let receipts: Vec<SignedReceipt> = parallel(count, |i| {
        let c = (i / 7) % clients.len();
        let mut session_id = [0u8; 16];
        session_id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        UsageReceipt {
            epoch: 0,
            session_id,
            node: pk(&nodes[i % nodes.len()]),
            client: pk(&clients[c]),
            buyer: pk(&buyers[c % buyers.len()]),
            sequence: 1,
            cumulative_bytes: 10_000_000,
            session_age_secs: 60,
        }
        .sign_both(d, &clients[c], &nodes[i % nodes.len()])
    });
    let bindings: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let op = key(i as u64, 3);
            NodeBinding {
                node: pk(n),
                operator: pk(&op),
                epoch: 0,
                // Recent: the oracle refuses bindings that have expired.
                issued_at: backhaul_oracle::clock::now(),
            }
            .sign(d, n, &op)
        })
        .collect();
    let grants: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let b = &buyers[c % buyers.len()];
            ClientGrant {
                buyer: pk(b),
                client: pk(client),
                epoch: 0,
                issued_at: 1,
                expires_at: i64::MAX,
                credit_limit: 0,
            }
            .sign(d, b)
        })
        .collect();
    Honest {
        bindings: borsh::to_vec(&bindings).expect("encode"),
        grants: borsh::to_vec(&grants).expect("encode"),
        buyers: buyers.iter().map(pk).collect(),
        bodies: Arc::new(
            receipts
                .chunks(batch)
                .map(|b| borsh::to_vec(&b.to_vec()).expect("encode"))
                .collect(),
        ),
    }
}

/// What the attacker does in a phase.
struct Attack<'a> {
    kind: Kind,
    /// Requests (or stalled connections) per second.
    rate: f64,
    pool: &'a [Junk],
    stalled_at_once: usize,
}

#[derive(Default)]
struct Outcome {
    honest_secs: f64,
    /// CPU time the process (oracle, honest sender and attacker) used while the honest sender
    /// sent.
    cpu_secs: f64,
    accepted: usize,
    honest_requests: usize,
    honest_retries: usize,
    honest_other: BTreeMap<String, usize>,
    /// Junk requests (or stalled connections) sent, by answer.
    answers: BTreeMap<String, usize>,
    sent: usize,
    not_sent: usize,
    drained: usize,
    /// The honest receipts ran out before the phase's time.
    ran_out: bool,
    rss_start: f64,
    rss_end: f64,
    peak: f64,
}

impl Outcome {
    fn receipts_per_sec(&self) -> f64 {
        self.accepted as f64 / self.honest_secs
    }
    /// Honest receipts accepted per second of CPU the process used: what the throughput would be
    /// on cores of its own, whatever else the machine was running.
    fn per_cpu_sec(&self) -> f64 {
        self.accepted as f64 / self.cpu_secs
    }
    fn requests_per_sec(&self) -> f64 {
        self.honest_requests as f64 / self.honest_secs
    }
    fn answers(&self) -> String {
        let mut parts: Vec<String> = self
            .answers
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if self.not_sent > 0 {
            parts.push(format!("not sent {}", self.not_sent));
        }
        parts.join(", ")
    }
}

struct Setup {
    deployment: Deployment,
    address_rate: u32,
    /// Items per second per address (`per_address_items_per_sec`), above what each honest
    /// connection sends.
    address_items: u32,
    connections: usize,
    /// How long the honest sender sends (unless its receipts run out first).
    secs: f64,
}

/// The answer's status as a label.
fn label(r: &Result<reqwest::Response, reqwest::Error>) -> String {
    match r {
        Ok(resp) => resp.status().as_u16().to_string(),
        Err(e) if e.is_timeout() => "timeout".into(),
        Err(_) => "io error".into(),
    }
}

async fn phase(setup: &Setup, honest: &Honest, attack: Option<Attack<'_>>) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = backhaul_oracle::clock::now() - 10;
    // No byte-rate limit on receipts (a consensus parameter, on the chain).
    let mut config = backhaul_oracle::chain::examples::example_config(genesis, 1_000_000, 0);
    config.consensus.max_rate_bytes_per_sec = u64::MAX;
    let mut state = MemoryState {
        config: Some(config),
        ..Default::default()
    };
    for b in &honest.buyers {
        state.credits.insert(
            *b,
            backhaul_close::BuyerCredits {
                issued: 1 << 50,
                tokens_burned: 1,
                ..Default::default()
            },
        );
    }
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        config: Pubkey::new_from_array(setup.deployment.config).to_string(),
        limit_loopback_addresses: true,
        per_address_requests_per_sec: setup.address_rate,
        per_address_items_per_sec: setup.address_items,
        ..Settings::default()
    };
    let oracle = Oracle::start(settings, Arc::new(MemoryChain::new(state)))
        .await
        .expect("oracle");
    let addr = oracle.addr;
    let url = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .build()
        .expect("client");
    for (path, body) in [
        ("/v1/bindings", &honest.bindings),
        ("/v1/grants", &honest.grants),
    ] {
        let resp = http
            .post(format!("{url}{path}"))
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        let answer: BatchResponse = resp.json().await.expect("json");
        let accepted = answer
            .results
            .iter()
            .filter(|r| r.status == ItemStatus::Accepted)
            .count();
        if accepted != answer.results.len() {
            println!(
                "    note: {path}: {accepted} of {} accepted",
                answer.results.len()
            );
        }
    }
    if let Err(e) = oracle.refresh_credits().await {
        println!("    note: refreshing credits failed: {e:#}");
    }

    let mut out = Outcome::default();
    let junk_http = reqwest::Client::builder()
        .local_address(ATTACKER)
        .pool_max_idle_per_host(ATTACK_IN_FLIGHT)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    if attack.as_ref().is_some_and(|a| !a.kind.stalls()) {
        // A sustained attacker has spent its address's burst long ago. (Stalling attackers
        // spend theirs on the connections they open at once.)
        'drain: loop {
            let answers = futures::future::join_all(
                (0..32).map(|_| junk_http.get(format!("{url}/health")).send()),
            )
            .await;
            for a in answers {
                out.drained += 1;
                if label(&a) == "429" {
                    break 'drain;
                }
            }
            if out.drained > 100_000 {
                println!("    note: the attacker's address was never limited");
                break;
            }
        }
    }
    out.rss_start = memory().0;
    reset_peak();

    // The attacker.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<BTreeMap<String, usize>>> = Default::default();
    let attacker = attack.map(|a| {
        let (stop, answers, junk_http, url) = (
            stop.clone(),
            answers.clone(),
            junk_http.clone(),
            url.clone(),
        );
        let pool: Vec<(&'static str, &'static str, Arc<Vec<u8>>)> = a
            .pool
            .iter()
            .map(|j| (j.path, j.content_type, j.body.clone()))
            .collect();
        let (kind, rate, stalled_at_once) = (a.kind, a.rate, a.stalled_at_once);
        tokio::spawn(async move {
            let held: Arc<Mutex<Vec<tokio::net::TcpStream>>> = Default::default();
            let count =
                |label: String| *answers.lock().expect("lock").entry(label).or_default() += 1;
            let stall = |held: Arc<Mutex<Vec<tokio::net::TcpStream>>>| async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(ATTACKER, 0))?;
                let mut stream = socket.connect(addr).await?;
                if kind == Kind::StalledHeaders {
                    stream
                        .write_all(b"POST /v1/receipts HTTP/1.1\r\nHost: oracle\r\nContent-Ty")
                        .await?;
                } else {
                    stream
                        .write_all(
                            b"POST /v1/receipts HTTP/1.1\r\nHost: oracle\r\n\
                              Content-Type: application/octet-stream\r\n\
                              Content-Length: 1000000\r\n\r\n",
                        )
                        .await?;
                    stream.write_all(&[0x77; 1024]).await?;
                }
                held.lock().expect("lock").push(stream);
                Ok::<(), std::io::Error>(())
            };
            if kind.stalls() {
                let opened =
                    futures::future::join_all((0..stalled_at_once).map(|_| stall(held.clone())))
                        .await;
                for o in opened {
                    count(if o.is_ok() { "opened" } else { "open failed" }.into());
                }
            }
            let in_flight = Arc::new(tokio::sync::Semaphore::new(ATTACK_IN_FLIGHT));
            // Pool entries refused at the door (429) are sent again before fresh ones, so that
            // the pool lasts as long as the oracle takes junk in; past its end it cycles
            // (replays, answered as duplicates).
            let refused: Arc<Mutex<Vec<usize>>> = Default::default();
            let mut fresh = 0usize;
            let started = tokio::time::Instant::now();
            let mut sent = 0usize;
            let mut not_sent = 0usize;
            let mut tasks = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if rate <= 0.0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let due = started + Duration::from_secs_f64((sent + not_sent) as f64 / rate);
                tokio::time::sleep_until(due).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    not_sent += 1;
                    continue;
                };
                let (answers, held) = (answers.clone(), held.clone());
                if kind.stalls() {
                    let o = stall(held).await;
                    *answers
                        .lock()
                        .expect("lock")
                        .entry(if o.is_ok() { "opened" } else { "open failed" }.into())
                        .or_default() += 1;
                    drop(permit);
                } else {
                    let index = refused.lock().expect("lock").pop().unwrap_or_else(|| {
                        fresh += 1;
                        (fresh - 1) % pool.len()
                    });
                    let (path, content_type, body) = pool[index].clone();
                    let refused = refused.clone();
                    let request = junk_http
                        .post(format!("{url}{path}"))
                        .header("content-type", content_type)
                        .body((*body).clone());
                    tasks.push(tokio::spawn(async move {
                        let resp = request.send().await;
                        let l = label(&resp);
                        if l == "429" {
                            refused.lock().expect("lock").push(index);
                        }
                        if let Ok(resp) = resp {
                            let _ = resp.bytes().await;
                        }
                        *answers.lock().expect("lock").entry(l).or_default() += 1;
                        drop(permit);
                    }));
                }
                sent += 1;
            }
            // Requests still in flight when the honest sender finished are not waited for.
            for t in &tasks {
                t.abort();
            }
            let held = held.lock().expect("lock").len();
            (sent, not_sent, held)
        })
    });

    // The honest sender.
    let cpu_started = cpu_secs();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(setup.secs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![];
    for c in 0..setup.connections {
        // Each honest connection from its own address (honest nodes are many), each under the
        // per-address limits.
        let http = reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + (c % 200) as u8)))
            .build()
            .expect("client");
        let (next, bodies, url) = (next.clone(), honest.bodies.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut requests, mut retries) = (0usize, 0usize, 0usize);
            let mut other: BTreeMap<String, usize> = BTreeMap::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                loop {
                    let resp = http
                        .post(format!("{url}/v1/receipts"))
                        .header("content-type", "application/octet-stream")
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => {
                            let answer: BatchResponse = r.json().await.expect("json");
                            for res in &answer.results {
                                if res.status == ItemStatus::Accepted {
                                    accepted += 1;
                                } else {
                                    *other
                                        .entry(format!("{:?} {:?}", res.status, res.reason))
                                        .or_default() += 1;
                                }
                            }
                            requests += 1;
                            break;
                        }
                        other_answer => {
                            // 429, 503 or a failed connection: wait a little and send again,
                            // until the phase's time is up.
                            *other
                                .entry(format!("http {}", label(&other_answer)))
                                .or_default() += 1;
                            if Instant::now() >= deadline {
                                break;
                            }
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            (accepted, requests, retries, other)
        }));
    }
    for t in tasks {
        let (a, r, retries, other) = t.await.expect("honest sender");
        out.accepted += a;
        out.honest_requests += r;
        out.honest_retries += retries;
        for (k, v) in other {
            *out.honest_other.entry(k).or_default() += v;
        }
    }
    out.honest_secs = started.elapsed().as_secs_f64();
    out.cpu_secs = cpu_secs() - cpu_started;
    out.ran_out = next.load(Ordering::Relaxed) >= honest.bodies.len();
    let (rss_end, peak) = memory();
    out.rss_end = rss_end;
    out.peak = peak;
    stop.store(true, Ordering::Relaxed);
    if let Some(a) = attacker {
        let (sent, not_sent, _held) = a.await.expect("attacker");
        out.sent = sent;
        out.not_sent = not_sent;
    }
    out.answers = std::mem::take(&mut *answers.lock().expect("lock"));
    drop(http);
    drop(junk_http);
    // Not `stop()`: it waits 10 s for the writer, whose sender `Oracle::api` still holds while
    // it waits. The database is thrown away anyway.
    oracle.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    out
}

fn progress(name: &str, o: &Outcome, baseline: Option<f64>) {
    let ratio = baseline.map_or(String::new(), |b| {
        format!(", {:.1}% of baseline", 100.0 * o.receipts_per_sec() / b)
    });
    println!(
        "  {name}: {:.0} receipts/s ({} accepted in {:.2} s, {:.0} per CPU second, {:.1} requests/s{ratio}); RSS {:.0} -> {:.0} MiB, peak {:.0} MiB",
        o.receipts_per_sec(),
        o.accepted,
        o.honest_secs,
        o.per_cpu_sec(),
        o.requests_per_sec(),
        o.rss_start,
        o.rss_end,
        o.peak,
    );
    if o.ran_out {
        println!(
            "    note: the honest receipts ran out before the phase's time; raise BACKHAUL_ATTACK_RECEIPTS"
        );
    }
    if o.honest_retries > 0 || !o.honest_other.is_empty() {
        println!(
            "    honest: {} retried requests; answers other than accepted: {:?}",
            o.honest_retries, o.honest_other
        );
    }
    if o.sent > 0 || !o.answers.is_empty() {
        println!(
            "    attacker: {} sent ({:.1}/s) after {} to drain its bucket; {}",
            o.sent,
            o.sent as f64 / o.honest_secs,
            o.drained,
            o.answers()
        );
    }
}

struct Row {
    kind: Kind,
    pct: f64,
    rate: f64,
    /// The unattacked phase run just before.
    before: Outcome,
    /// The unattacked throughput of the phase run just after (set once it ran), and its
    /// receipts per CPU second.
    after: f64,
    after_cpu: f64,
    outcome: Outcome,
}

impl Row {
    /// The unattacked throughput around the attacked phase: the mean of the phases just before
    /// and just after it.
    fn unattacked(&self) -> f64 {
        (self.before.receipts_per_sec() + self.after) / 2.0
    }
    fn ratio(&self) -> f64 {
        self.outcome.receipts_per_sec() / self.unattacked()
    }
    /// The ratio of honest receipts per CPU second, attacked to unattacked (before and after).
    fn cpu_ratio(&self) -> f64 {
        self.outcome.per_cpu_sec() / ((self.before.per_cpu_sec() + self.after_cpu) / 2.0)
    }
}

fn table(rows: &[Row]) {
    println!(
        "  {:<16} {:>8} {:>8} {:>10} {:>11} {:>11} {:>7} {:>9} {:>8} {:>8}  attacker's answers (status count)",
        "kind", "junk/s", "% honest", "admitted/s", "unattacked", "attacked", "ratio", "CPU ratio", "peak MiB", "RSS +MiB"
    );
    for r in rows {
        let o = &r.outcome;
        // Junk requests the oracle took in rather than refused at the door (429), per second; for
        // stalling kinds, connections opened.
        let admitted = if r.kind.stalls() {
            o.answers.get("opened").copied().unwrap_or(0)
        } else {
            o.answers
                .iter()
                .filter(|(k, _)| k.as_str() != "429")
                .map(|(_, v)| v)
                .sum()
        };
        println!(
            "  {:<16} {:>8.1} {:>7.0}% {:>10.1} {:>11.0} {:>11.0} {:>6.1}% {:>8.1}% {:>8.0} {:>+8.0}  {}",
            r.kind.name(),
            r.rate,
            r.pct,
            admitted as f64 / o.honest_secs,
            r.unattacked(),
            o.receipts_per_sec(),
            100.0 * r.ratio(),
            100.0 * r.cpu_ratio(),
            o.peak,
            o.rss_end - o.rss_start,
            o.answers()
        );
    }
}

fn main() {
    let secs: f64 = env("BACKHAUL_ATTACK_SECS", 5.0);
    let receipts: usize = env("BACKHAUL_ATTACK_RECEIPTS", 150_000);
    let batch: usize = env("BACKHAUL_ATTACK_BATCH", 1_000).clamp(1, 10_000);
    let junk_batch: usize = env("BACKHAUL_ATTACK_JUNK_BATCH", batch).clamp(2, 10_000);
    let connections: usize = env("BACKHAUL_ATTACK_CONNECTIONS", 4).max(1);
    let pct: f64 = env("BACKHAUL_ATTACK_PCT", 10.0);
    let address_rate: u32 = env("BACKHAUL_ATTACK_ADDRESS_RATE", 50).max(1);
    let address_items: u32 = env("BACKHAUL_ATTACK_ADDRESS_ITEMS", 10_000).max(1);
    let stalled_at_once: usize = env("BACKHAUL_ATTACK_STALLED", 256);
    let stall_sweep: Vec<usize> = std::env::var("BACKHAUL_ATTACK_STALL_SWEEP")
        .unwrap_or_else(|_| "32,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let sweep: Vec<f64> = std::env::var("BACKHAUL_ATTACK_SWEEP")
        .unwrap_or_else(|_| "10,25,50,100,200,500".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let kinds: Vec<Kind> = match std::env::var("BACKHAUL_ATTACK_KINDS") {
        Ok(list) => KINDS
            .into_iter()
            .filter(|k| list.split(',').any(|s| s.trim() == k.name()))
            .collect(),
        Err(_) => KINDS.to_vec(),
    };
    let deployment = Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: [0xC0; 32],
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "attack: phases of {secs} s; honest sender on 127.0.0.10 and up, one address per connection ({HONEST_NODES} nodes, {HONEST_CLIENTS} clients, {HONEST_BUYERS} funded buyers; \
         {receipts} receipts signed), batches of {batch}, {connections} connections; junk from 127.0.0.2, {junk_batch} items per request; \
         per-address limits {address_rate} requests/s and {address_items} items/s, loopback limited too; {cores} cores"
    );
    let started = Instant::now();
    let honest = honest(receipts, batch, &deployment);
    println!(
        "  signing the honest workload (setup): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let setup = Setup {
        deployment,
        address_rate,
        address_items,
        connections,
        secs,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let first = rt.block_on(phase(&setup, &honest, None));
    progress("unattacked (first)", &first, None);
    let mut unattacked = vec![first.receipts_per_sec()];
    let honest_rps = first.requests_per_sec();
    // Junk requests a phase needs: at most the offered rate, and after the drained burst no more
    // than the address's rate gets past the door; with room for a slower attacked phase.
    let needed = |rate: f64| {
        let through = rate.min(f64::from(address_rate));
        ((through * secs * 1.5).ceil() as usize).clamp(8, 1_000)
    };
    // An unattacked phase, then the attacked one: the ratio is taken between the two, so that
    // the machine's other load drifts as little as possible between them.
    let pair = |kind: Kind,
                p: f64,
                at_once: usize,
                pool: &[Junk],
                name: String,
                unattacked: &mut Vec<f64>| {
        let before = rt.block_on(phase(&setup, &honest, None));
        progress("  unattacked", &before, None);
        unattacked.push(before.receipts_per_sec());
        let rate = before.requests_per_sec() * p / 100.0;
        let outcome = rt.block_on(phase(
            &setup,
            &honest,
            Some(Attack {
                kind,
                rate,
                pool,
                stalled_at_once: at_once,
            }),
        ));
        progress(
            &format!("{name} at {rate:.1}/s"),
            &outcome,
            Some(before.receipts_per_sec()),
        );
        Row {
            kind,
            pct: p,
            rate,
            after: before.receipts_per_sec(),
            after_cpu: before.per_cpu_sec(),
            before,
            outcome,
        }
    };

    let mut rows = Vec::new();
    for kind in kinds.iter().copied() {
        let t = Instant::now();
        let pool = junk(
            kind,
            needed(honest_rps * pct / 100.0),
            junk_batch,
            &setup.deployment,
        );
        println!(
            "  {} ({}): {} junk requests prepared in {:.1} s",
            kind.name(),
            kind.what(),
            pool.len(),
            t.elapsed().as_secs_f64()
        );
        rows.push(pair(
            kind,
            pct,
            stalled_at_once,
            &pool,
            kind.name().into(),
            &mut unattacked,
        ));
    }

    // The rate sweep is of the kind sent at a rate with the lowest ratio; stalled connections
    // are swept by how many are held at once.
    let worst = rows
        .iter()
        .filter(|r| !r.kind.stalls())
        .min_by(|a, b| a.ratio().total_cmp(&b.ratio()))
        .map(|r| r.kind);
    let mut sweep_rows = Vec::new();
    if let Some(kind) = worst {
        let top = sweep.iter().copied().fold(0.0, f64::max);
        let t = Instant::now();
        let pool = junk(
            kind,
            needed(honest_rps * top / 100.0),
            junk_batch,
            &setup.deployment,
        );
        println!(
            "  sweep of {} (the lowest ratio): {} junk requests prepared in {:.1} s",
            kind.name(),
            pool.len(),
            t.elapsed().as_secs_f64()
        );
        for p in sweep.iter().copied() {
            let name = format!("{} {p:.0}%", kind.name());
            sweep_rows.push(pair(kind, p, stalled_at_once, &pool, name, &mut unattacked));
        }
    }
    let mut stall_rows = Vec::new();
    if kinds.contains(&Kind::StalledBodies) {
        for n in stall_sweep.iter().copied() {
            let name = format!("{n} stalled bodies held, none added");
            stall_rows.push(pair(
                Kind::StalledBodies,
                0.0,
                n,
                &[],
                name,
                &mut unattacked,
            ));
        }
    }

    let last = rt.block_on(phase(&setup, &honest, None));
    progress("unattacked (last)", &last, None);
    unattacked.push(last.receipts_per_sec());
    // Each attacked phase's "after" is the next pair's unattacked phase, or the last.
    {
        let mut all: Vec<&mut Row> = rows
            .iter_mut()
            .chain(sweep_rows.iter_mut())
            .chain(stall_rows.iter_mut())
            .collect();
        for i in 0..all.len() {
            let (after, after_cpu) = all
                .get(i + 1)
                .map_or((last.receipts_per_sec(), last.per_cpu_sec()), |r| {
                    (r.before.receipts_per_sec(), r.before.per_cpu_sec())
                });
            all[i].after = after;
            all[i].after_cpu = after_cpu;
        }
    }

    println!();
    let mean = unattacked.iter().sum::<f64>() / unattacked.len() as f64;
    let (lo, hi) = unattacked
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    println!(
        "unattacked: {} phases, mean {mean:.0} receipts/s (least {lo:.0}, most {hi:.0}); first {:.1} requests/s, peak RSS {:.0} MiB; last peak RSS {:.0} MiB",
        unattacked.len(),
        first.requests_per_sec(),
        first.peak,
        last.peak
    );
    println!(
        "each kind at {pct:.0}% of the honest request rate (ratio: honest receipts/s to the mean of the unattacked phases just before and after; \
         CPU ratio: the same for honest receipts per CPU second of the process):"
    );
    table(&rows);
    if let Some(kind) = worst {
        println!("sweep of {} (the lowest ratio above):", kind.name());
        table(&sweep_rows);
        match sweep_rows.iter().position(|r| r.ratio() < 0.8) {
            Some(0) => println!(
                "  below 80% from the lowest rate swept, {:.0}% of the honest request rate",
                sweep_rows[0].pct
            ),
            Some(i) => println!(
                "  falls below 80% between {:.0}% and {:.0}% of the honest request rate ({:.1} and {:.1} junk requests/s)",
                sweep_rows[i - 1].pct,
                sweep_rows[i].pct,
                sweep_rows[i - 1].rate,
                sweep_rows[i].rate
            ),
            None => println!(
                "  at or above 80% at every rate swept, up to {:.0}% of the honest request rate",
                sweep.iter().copied().fold(0.0, f64::max)
            ),
        }
    }
    if !stall_rows.is_empty() {
        println!(
            "stalled bodies held at once from one address (max_concurrent_requests {}):",
            Settings::default().max_concurrent_requests
        );
        println!(
            "  {:>8} {:>11} {:>11} {:>7} {:>9} {:>14} {:>8}",
            "held", "unattacked", "attacked", "ratio", "CPU ratio", "honest 503s", "peak MiB"
        );
        for r in &stall_rows {
            println!(
                "  {:>8} {:>11.0} {:>11.0} {:>6.1}% {:>8.1}% {:>14} {:>8.0}",
                r.outcome.answers.get("opened").copied().unwrap_or(0),
                r.unattacked(),
                r.outcome.receipts_per_sec(),
                100.0 * r.ratio(),
                100.0 * r.cpu_ratio(),
                r.outcome.honest_other.get("http 503").copied().unwrap_or(0),
                r.outcome.peak
            );
        }
    }
    let peak = rows
        .iter()
        .chain(&sweep_rows)
        .chain(&stall_rows)
        .flat_map(|r| [r.outcome.peak, r.before.peak])
        .chain([first.peak, last.peak])
        .fold(0.0, f64::max);
    println!(
        "largest peak RSS of the process (oracle, signed workload and junk) in any phase: {peak:.0} MiB"
    );
}

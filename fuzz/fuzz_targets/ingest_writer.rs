//! The oracle's ingest path with the storage writer in the loop: a real `backhaul_oracle::Oracle`
//! (SQLite in a temporary directory, a `MemoryChain`, HTTP on 127.0.0.1), started once per
//! process, receives each input as a sequence of requests.
//!
//! An input is read as requests, each a kind byte and its arguments (bytes past the end read as
//! zero): raw bodies for `/v1/receipts`, `/v1/bindings` and `/v1/grants`; correctly framed bodies
//! of fuzz bytes; receipts, bindings and grants validly signed over fuzz-chosen fields (epochs,
//! sequences, byte counts and credit limits up to `u64::MAX`, keys from a small pool so that
//! sessions supersede, equivocate and repeat), each optionally with one byte flipped after
//! signing; a wrong content type, an oversized body, `GET` endpoints.
//!
//! Properties: no panic; every answer to an ingest request is either `200` with a JSON
//! `BatchResponse` holding one result per item (exactly when the body decodes) or a `4xx` with a
//! JSON error body (never a `5xx`: the writer must store or refuse every decodable batch); an item
//! signed correctly and not altered afterwards is never refused for its signature; `/health`
//! answers `200` with a JSON body after every input.
#![no_main]

use backhaul_oracle::chain::{examples::example_config, MemoryChain, MemoryState};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::api::{
    decode_batch, BatchResponse, ErrorResponse, RejectReason, MAX_BINDINGS_PER_REQUEST,
    MAX_GRANTS_PER_REQUEST, MAX_RECEIPTS_PER_REQUEST,
};
use backhaul_protocol::{
    ClientGrant, Deployment, NodeBinding, SignedBinding, SignedGrant, SignedReceipt, UsageReceipt,
    SIGNED_BINDING_LEN, SIGNED_GRANT_LEN, SIGNED_RECEIPT_LEN,
};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Requests read from one input at most.
const MAX_REQUESTS: usize = 16;
/// The oracle's body limit here: small, so that an oversized body is cheap to send.
const MAX_BODY: usize = 64 << 10;
/// Keys: 0..4 nodes, 4..8 clients, 8..12 buyers and operators (8 and 9 have credit accounts).
const KEYS: usize = 12;

struct Harness {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: String,
    deployment: Deployment,
    keys: Vec<SigningKey>,
    /// Keeps the oracle running for the life of the process.
    _oracle: Oracle,
}

fn key(i: usize) -> SigningKey {
    let mut b = [0x5a; 32];
    b[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&b)
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!(
            "backhaul-fuzz-ingest-writer-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let deployment = Deployment {
            program_id: backhaul::ID.to_bytes(),
            config: [0xC0; 32],
        };
        let keys: Vec<SigningKey> = (0..KEYS).map(key).collect();
        let genesis = backhaul_oracle::clock::now() - 10;
        let mut state = MemoryState {
            config: Some(example_config(genesis, 1_000_000, 0)),
            ..Default::default()
        };
        for buyer in &keys[8..10] {
            state.credits.insert(
                buyer.verifying_key().to_bytes(),
                backhaul_close::BuyerCredits {
                    issued: 1 << 40,
                    ..Default::default()
                },
            );
        }
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir,
            config: backhaul_protocol::dataset::b58(&deployment.config),
            max_body_bytes: MAX_BODY,
            ..Settings::default()
        };
        let oracle = rt
            .block_on(Oracle::start(settings, Arc::new(MemoryChain::new(state))))
            .expect("the oracle starts");
        let url = format!("http://{}", oracle.addr);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Harness {
            rt,
            http,
            url,
            deployment,
            keys,
            _oracle: oracle,
        }
    })
}

/// Reads the input front to back; past its end every byte is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
}

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Receipts,
    Bindings,
    Grants,
}

impl Endpoint {
    fn of(i: u8) -> Self {
        match i % 3 {
            0 => Endpoint::Receipts,
            1 => Endpoint::Bindings,
            _ => Endpoint::Grants,
        }
    }
    fn path(self) -> &'static str {
        match self {
            Endpoint::Receipts => "/v1/receipts",
            Endpoint::Bindings => "/v1/bindings",
            Endpoint::Grants => "/v1/grants",
        }
    }
    fn item_len(self) -> usize {
        match self {
            Endpoint::Receipts => SIGNED_RECEIPT_LEN,
            Endpoint::Bindings => SIGNED_BINDING_LEN,
            Endpoint::Grants => SIGNED_GRANT_LEN,
        }
    }
    /// How many items the body holds if the oracle must decode it.
    fn decodes(self, body: &[u8]) -> Option<usize> {
        match self {
            Endpoint::Receipts => decode_batch::<SignedReceipt>(
                body,
                "SignedReceipt",
                SIGNED_RECEIPT_LEN,
                MAX_RECEIPTS_PER_REQUEST,
            )
            .ok()
            .map(|v| v.len()),
            Endpoint::Bindings => decode_batch::<SignedBinding>(
                body,
                "SignedBinding",
                SIGNED_BINDING_LEN,
                MAX_BINDINGS_PER_REQUEST,
            )
            .ok()
            .map(|v| v.len()),
            Endpoint::Grants => decode_batch::<SignedGrant>(
                body,
                "SignedGrant",
                SIGNED_GRANT_LEN,
                MAX_GRANTS_PER_REQUEST,
            )
            .ok()
            .map(|v| v.len()),
        }
    }
}

/// One request: where, the body, and for each item whether it was signed correctly and left
/// intact (its signatures must verify).
struct Request {
    endpoint: Endpoint,
    body: Vec<u8>,
    content_type: &'static str,
    intact: Vec<bool>,
}

const OCTETS: &str = "application/octet-stream";

/// Encodes signed items as a batch, flipping one byte of each item the input asks to.
fn batch<T: borsh::BorshSerialize>(
    items: Vec<(T, Option<(u16, u8)>)>,
    item_len: usize,
) -> (Vec<u8>, Vec<bool>) {
    let mut body = (items.len() as u32).to_le_bytes().to_vec();
    let mut intact = Vec::new();
    for (item, flip) in items {
        let mut bytes = borsh::to_vec(&item).expect("encode");
        assert_eq!(bytes.len(), item_len);
        if let Some((at, x)) = flip {
            bytes[usize::from(at) % item_len] ^= x | 1;
        }
        intact.push(flip.is_none());
        body.extend_from_slice(&bytes);
    }
    (body, intact)
}

fn flip(input: &mut Input, asked: bool) -> Option<(u16, u8)> {
    asked.then(|| (input.u16(), input.byte()))
}

/// The next request the input describes, or a `GET` path.
fn next(h: &Harness, input: &mut Input) -> Result<Request, &'static str> {
    let op = input.byte();
    let d = &h.deployment;
    let k = &h.keys;
    let request = match op % 8 {
        // Raw bytes as a body.
        kind @ 0..=2 => {
            let len = usize::from(input.u16()) % 8192;
            Request {
                endpoint: Endpoint::of(kind),
                body: input.take(len),
                content_type: OCTETS,
                intact: vec![],
            }
        }
        // Fuzz bytes in a correctly framed body: decoded, then verified (and refused).
        3 => {
            let endpoint = Endpoint::of(op >> 3);
            let n = usize::from(input.byte() % 4) + 1;
            let mut body = (n as u32).to_le_bytes().to_vec();
            let mut items = input.take(n * endpoint.item_len());
            items.resize(n * endpoint.item_len(), 0);
            body.extend_from_slice(&items);
            Request {
                endpoint,
                body,
                content_type: OCTETS,
                intact: vec![],
            }
        }
        // Receipts signed by both parties over fuzz-chosen fields.
        4 => {
            let n = usize::from(input.byte() % 4) + 1;
            let items = (0..n)
                .map(|_| {
                    let node = &k[usize::from(input.byte()) % 4];
                    let client = &k[4 + usize::from(input.byte()) % 4];
                    let buyer = &k[8 + usize::from(input.byte()) % 4];
                    let session = input.byte();
                    let f = input.byte();
                    let epoch = match f & 3 {
                        0 | 1 => 0,
                        2 => 1,
                        _ => input.u64(),
                    };
                    let sequence = if f & 4 != 0 {
                        input.u64()
                    } else {
                        u64::from(input.byte())
                    };
                    let cumulative_bytes = if f & 8 != 0 {
                        input.u64()
                    } else {
                        u64::from(input.byte()) << 20
                    };
                    let session_age_secs = if f & 16 != 0 { input.u64() } else { 60 };
                    let r = UsageReceipt {
                        epoch,
                        session_id: [session; 16],
                        node: node.verifying_key().to_bytes(),
                        client: client.verifying_key().to_bytes(),
                        buyer: buyer.verifying_key().to_bytes(),
                        sequence,
                        cumulative_bytes,
                        session_age_secs,
                    }
                    .sign_both(d, client, node);
                    (r, flip(input, f & 32 != 0))
                })
                .collect();
            let (body, intact) = batch(items, SIGNED_RECEIPT_LEN);
            Request {
                endpoint: Endpoint::Receipts,
                body,
                content_type: OCTETS,
                intact,
            }
        }
        // Bindings signed by the node and its operator (any pool key, so a buyer may operate).
        5 => {
            let n = usize::from(input.byte() % 4) + 1;
            let items = (0..n)
                .map(|_| {
                    let node = &k[usize::from(input.byte()) % KEYS];
                    let operator = &k[usize::from(input.byte()) % KEYS];
                    let f = input.byte();
                    let epoch = if f & 1 != 0 { input.u64() } else { 0 };
                    // Recent (the oracle refuses expired bindings), or anything.
                    let issued_at = if f & 2 != 0 {
                        input.u64() as i64
                    } else {
                        backhaul_oracle::clock::now() - i64::from(input.byte())
                    };
                    let b = NodeBinding {
                        node: node.verifying_key().to_bytes(),
                        operator: operator.verifying_key().to_bytes(),
                        epoch,
                        issued_at,
                    }
                    .sign(d, node, operator);
                    (b, flip(input, f & 4 != 0))
                })
                .collect();
            let (body, intact) = batch(items, SIGNED_BINDING_LEN);
            Request {
                endpoint: Endpoint::Bindings,
                body,
                content_type: OCTETS,
                intact,
            }
        }
        // Grants signed by a buyer (funded or not) for a client.
        6 => {
            let n = usize::from(input.byte() % 4) + 1;
            let items = (0..n)
                .map(|_| {
                    let buyer = &k[usize::from(input.byte()) % KEYS];
                    let client = &k[usize::from(input.byte()) % KEYS];
                    let f = input.byte();
                    let epoch = if f & 1 != 0 { input.u64() } else { 0 };
                    let issued_at = i64::from(input.byte());
                    let expires_at = if f & 2 != 0 {
                        input.u64() as i64
                    } else {
                        i64::MAX
                    };
                    let credit_limit = if f & 8 != 0 { input.u64() } else { 0 };
                    let g = ClientGrant {
                        buyer: buyer.verifying_key().to_bytes(),
                        client: client.verifying_key().to_bytes(),
                        epoch,
                        issued_at,
                        expires_at,
                        credit_limit,
                    }
                    .sign(d, buyer);
                    (g, flip(input, f & 4 != 0))
                })
                .collect();
            let (body, intact) = batch(items, SIGNED_GRANT_LEN);
            Request {
                endpoint: Endpoint::Grants,
                body,
                content_type: OCTETS,
                intact,
            }
        }
        // The rest: a wrong content type, an oversized body, or reads.
        _ => match input.byte() % 5 {
            0 => {
                let endpoint = Endpoint::of(input.byte());
                let mut body = 1u32.to_le_bytes().to_vec();
                body.resize(4 + endpoint.item_len(), 0);
                Request {
                    endpoint,
                    body,
                    content_type: "application/json",
                    intact: vec![],
                }
            }
            1 => Request {
                endpoint: Endpoint::of(input.byte()),
                body: vec![0; MAX_BODY + 1 + usize::from(input.byte())],
                content_type: OCTETS,
                intact: vec![],
            },
            2 => return Err("/v1/epochs"),
            3 => return Err("/v1/epochs/0"),
            _ => return Err("/health"),
        },
    };
    Ok(request)
}

async fn post(h: &Harness, r: &Request) {
    let resp = h
        .http
        .post(format!("{}{}", h.url, r.endpoint.path()))
        .header("content-type", r.content_type)
        .body(r.body.clone())
        .send()
        .await
        .expect("the oracle answers every request");
    let status = resp.status();
    let text = resp.text().await.expect("the answer has a body");
    let expected = (r.content_type == OCTETS)
        .then(|| r.endpoint.decodes(&r.body))
        .flatten();
    match expected {
        Some(n) => {
            assert_eq!(
                status.as_u16(),
                200,
                "a decodable body of {n} {:?} items was answered {status}: {text}",
                r.endpoint
            );
            let answer: BatchResponse = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not a BatchResponse ({e}): {text}"));
            assert_eq!(answer.results.len(), n, "one result per item: {text}");
            for (result, intact) in answer.results.iter().zip(&r.intact) {
                if *intact {
                    assert!(
                        !matches!(
                            result.reason,
                            Some(RejectReason::BadSignature | RejectReason::BadKey)
                        ),
                        "a correctly signed item was refused for its signature: {text}"
                    );
                }
            }
        }
        None => {
            assert!(
                status.is_client_error(),
                "a body that does not decode (or has the wrong type) was answered {status}: {text}"
            );
            let error: ErrorResponse = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not an error body ({e}): {status} {text}"));
            assert!(!error.error.is_empty(), "an empty error message");
        }
    }
}

async fn get(h: &Harness, path: &str) {
    let resp = h
        .http
        .get(format!("{}{path}", h.url))
        .send()
        .await
        .expect("the oracle answers every request");
    let status = resp.status();
    let text = resp.text().await.expect("the answer has a body");
    assert!(
        status.is_success() || status.is_client_error(),
        "GET {path} answered {status}: {text}"
    );
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"));
    if path == "/health" {
        assert_eq!(status.as_u16(), 200, "health: {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let mut input = Input(data);
    h.rt.block_on(async {
        for _ in 0..MAX_REQUESTS {
            if input.0.is_empty() {
                break;
            }
            match next(h, &mut input) {
                Ok(r) => post(h, &r).await,
                Err(path) => get(h, path).await,
            }
        }
        get(h, "/health").await;
    });
});

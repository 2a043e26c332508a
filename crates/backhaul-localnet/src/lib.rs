//! A Solana HTTP JSON-RPC 2.0 endpoint over an in-process Agave bank.
//!
//! The bank is solana-program-test's (`ProgramTestContext` / `BanksClient`): the Backhaul program is
//! compiled for the host and loaded as a builtin (the same entry shim as `tests/src/lib.rs`), while
//! SPL Token, Token-2022 and the Associated Token Account program run as the real SBF programs
//! shipped inside solana-program-test. Unmodified clients (`solana_client`'s `RpcClient` and
//! `PubsubClient`, `@solana/web3.js`, Anchor TS) talk to it over HTTP and websocket (PubSub on
//! the RPC port + 1, where web3.js and `solana-test-validator` put it, and on the RPC port).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use backhaul_localnet::{Localnet, LocalnetConfig};
//! let net = Localnet::start(LocalnetConfig::default())?;
//! println!("RPC at {}, PubSub at {}", net.url(), net.ws_url());
//! net.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! See the crate's README for the supported methods, the extra `backhaul*` methods (clock warp,
//! blockhash expiry, account override) and the limits.

// solana-program-test, the banks client and the account decoder are "unstable API" crates.
#![allow(deprecated)]

mod bank;
mod http;
mod logs;
pub mod program;
mod pubsub;
mod rpc;
mod ws;

pub use ws::PubsubLimits;

pub use program::ProgramBuild;

use anyhow::Context as _;
use solana_sdk::account::Account;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::future::IntoFuture;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

pub use solana_sdk;

/// The Backhaul program's id (loaded at this address).
pub const PROGRAM_ID: Pubkey = backhaul::ID;

/// The upgradeable BPF loader (owner of ProgramData accounts).
pub const BPF_LOADER_UPGRADEABLE: Pubkey =
    solana_sdk::pubkey!("BPFLoaderUpgradeab1e11111111111111111111111");

/// Lamports the faucet starts with unless configured otherwise (500 million SOL, as
/// `solana-test-validator`).
pub const DEFAULT_FAUCET_LAMPORTS: u64 = 500_000_000 * 1_000_000_000;

/// How many blockhashes the bank keeps valid for processing (`MAX_PROCESSING_AGE`).
pub const BLOCKHASH_VALIDITY: u64 = 150;

/// What to start.
pub struct LocalnetConfig {
    /// Where to listen; loopback and an ephemeral port by default.
    pub listen: SocketAddr,
    /// The upgrade authority written into the program's ProgramData account (so it can send
    /// `initialize`). `None`: the faucet.
    pub upgrade_authority: Option<Pubkey>,
    /// Accounts present from the start (they are also listed by `getProgramAccounts`).
    pub accounts: Vec<(Pubkey, Account)>,
    /// The clock's `unix_timestamp` at start. `None`: the machine's current time.
    pub unix_timestamp: Option<i64>,
    /// Whether the clock also advances with wall time (it always moves with
    /// `backhaulWarpClock`). Off by default: the clock stands still unless warped.
    pub follow_wall_clock: bool,
    /// The faucet used by `requestAirdrop`. `None`: a fresh keypair.
    pub faucet: Option<Keypair>,
    /// The faucet's starting balance.
    pub faucet_lamports: u64,
    /// The program to load. `None`: [`ProgramBuild::from_env`] (the bytecode, or the build
    /// `BACKHAUL_PROGRAM` names), failing when it is missing.
    pub program: Option<ProgramBuild>,
    /// Where the websocket PubSub endpoint listens. `None`: the RPC address with port + 1, as
    /// `solana-test-validator` (web3.js derives the websocket URL that way); with an ephemeral
    /// RPC port, a pair of free consecutive ports is picked. PubSub is also served on the RPC
    /// port itself (`GET /` with a websocket upgrade).
    pub ws_listen: Option<SocketAddr>,
    /// Bounds of the websocket endpoint (connections, subscriptions, queued notifications).
    pub pubsub_limits: PubsubLimits,
}

impl Default for LocalnetConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upgrade_authority: None,
            accounts: Vec::new(),
            unix_timestamp: None,
            follow_wall_clock: false,
            faucet: None,
            faucet_lamports: DEFAULT_FAUCET_LAMPORTS,
            program: None,
            ws_listen: None,
            pubsub_limits: PubsubLimits::default(),
        }
    }
}

/// How many ephemeral ports to try for a free `port, port + 1` pair.
const PORT_PAIR_ATTEMPTS: usize = 64;

/// Binds the RPC listener and the websocket listener (`ws_listen`, or the RPC port + 1).
fn bind(
    listen: SocketAddr,
    ws_listen: Option<SocketAddr>,
) -> anyhow::Result<(TcpListener, TcpListener)> {
    if let Some(ws) = ws_listen {
        let rpc = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        let ws =
            TcpListener::bind(ws).with_context(|| format!("binding the websocket address {ws}"))?;
        return Ok((rpc, ws));
    }
    let next = |addr: SocketAddr| -> Option<SocketAddr> {
        let port = addr.port().checked_add(1)?;
        Some(SocketAddr::new(addr.ip(), port))
    };
    if listen.port() != 0 {
        let ws_addr = next(listen).with_context(|| {
            format!("the RPC port {} leaves no port + 1 for websocket; choose a lower port or set the websocket address", listen.port())
        })?;
        let rpc = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        let ws = TcpListener::bind(ws_addr).with_context(|| {
            format!(
                "binding the websocket address {ws_addr} (the RPC port + 1, where clients look for \
                 it); free that port, or choose another with --ws-listen / LocalnetConfig::ws_listen"
            )
        })?;
        return Ok((rpc, ws));
    }
    for _ in 0..PORT_PAIR_ATTEMPTS {
        let rpc = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        let Some(ws_addr) = next(rpc.local_addr()?) else {
            continue;
        };
        if let Ok(ws) = TcpListener::bind(ws_addr) {
            return Ok((rpc, ws));
        }
    }
    anyhow::bail!(
        "found no free pair of consecutive ports on {} in {PORT_PAIR_ATTEMPTS} attempts; set \
         LocalnetConfig::ws_listen to put the websocket endpoint elsewhere",
        listen.ip()
    )
}

/// A running endpoint. Dropping it shuts it down too.
pub struct Localnet {
    addr: SocketAddr,
    ws_addr: SocketAddr,
    faucet: Keypair,
    upgrade_authority: Pubkey,
    genesis_hash: Hash,
    http_stop: Option<tokio::sync::watch::Sender<bool>>,
    http_thread: Option<JoinHandle<()>>,
    bank: Option<bank::BankHandle>,
    bank_thread: Option<JoinHandle<()>>,
}

impl Localnet {
    /// Creates the bank, loads the programs and accounts, and starts serving JSON-RPC.
    ///
    /// Blocks until the endpoint accepts requests (typically well under a second); it runs on
    /// threads of its own, so it can be used from synchronous code and from any async runtime.
    pub fn start(config: LocalnetConfig) -> anyhow::Result<Localnet> {
        let (listener, ws_listener) = bind(config.listen, config.ws_listen)?;
        listener.set_nonblocking(true)?;
        ws_listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let ws_addr = ws_listener.local_addr()?;

        let faucet = config.faucet.unwrap_or_else(Keypair::new);
        let upgrade_authority = config.upgrade_authority.unwrap_or(faucet.pubkey());
        let program = match config.program {
            Some(p) => p,
            None => ProgramBuild::from_env()?,
        };
        tracing::debug!(program = %program.describe(), "loading the Backhaul program");
        let setup = bank::BankSetup {
            program,
            faucet: faucet.insecure_clone(),
            faucet_lamports: config.faucet_lamports,
            upgrade_authority,
            accounts: config.accounts,
            unix_timestamp: config.unix_timestamp,
            follow_wall_clock: config.follow_wall_clock,
        };
        let (bank, bank_thread) = bank::spawn(setup)?;
        let genesis_hash = bank.info.genesis_hash;

        let (http_stop, stop_rx) = tokio::sync::watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let io = rpc::handler(bank.clone());
        let pubsub = ws::PubsubServer::new(bank.clone(), config.pubsub_limits, stop_rx.clone());
        let http_thread = std::thread::Builder::new()
            .name("localnet-http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("localnet-rpc")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listeners = tokio::net::TcpListener::from_std(listener)
                        .and_then(|l| Ok((l, tokio::net::TcpListener::from_std(ws_listener)?)));
                    let (listener, ws_listener) = match listeners {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    };
                    let http = axum::serve(listener, http::router(io, pubsub.clone()))
                        .with_graceful_shutdown(stopped(stop_rx.clone()));
                    let ws = axum::serve(ws_listener, ws::router(pubsub))
                        .with_graceful_shutdown(stopped(stop_rx));
                    let (http, ws) = tokio::join!(http.into_future(), ws.into_future());
                    if let Err(e) = http {
                        tracing::error!(error = %e, "JSON-RPC server failed");
                    }
                    if let Err(e) = ws {
                        tracing::error!(error = %e, "websocket server failed");
                    }
                });
            })?;
        ready_rx
            .recv()
            .context("the HTTP thread exited during startup")??;
        tracing::info!(%addr, %ws_addr, faucet = %faucet.pubkey(), %upgrade_authority, "localnet started");
        Ok(Localnet {
            addr,
            ws_addr,
            faucet,
            upgrade_authority,
            genesis_hash,
            http_stop: Some(http_stop),
            http_thread: Some(http_thread),
            bank: Some(bank),
            bank_thread: Some(bank_thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port>`: websocket PubSub (by default the RPC port + 1).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// The address the websocket PubSub endpoint listens on.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The faucet behind `requestAirdrop`; also usable directly as a funded payer.
    pub fn faucet(&self) -> &Keypair {
        &self.faucet
    }

    /// The upgrade authority recorded in the program's ProgramData account.
    pub fn upgrade_authority(&self) -> Pubkey {
        self.upgrade_authority
    }

    /// The bank's genesis hash (`getGenesisHash`).
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// Stops serving, then stops the bank. In-flight requests finish first.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.http_thread.take() {
            let _ = t.join();
        }
        if let Some(bank) = self.bank.take() {
            bank.stop();
        }
        if let Some(t) = self.bank_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The program's ProgramData address (where the upgradeable loader records the upgrade
/// authority).
pub fn program_data_address() -> Pubkey {
    Pubkey::find_program_address(&[PROGRAM_ID.as_ref()], &BPF_LOADER_UPGRADEABLE).0
}

/// A ProgramData account naming `authority` as the upgrade authority (bincode layout of
/// `UpgradeableLoaderState::ProgramData`, without program bytes).
pub fn program_data_account(authority: &Pubkey) -> Account {
    let mut data = Vec::with_capacity(45);
    data.extend_from_slice(&3u32.to_le_bytes()); // UpgradeableLoaderState::ProgramData
    data.extend_from_slice(&0u64.to_le_bytes()); // slot
    data.push(1); // Some(
    data.extend_from_slice(authority.as_ref()); // authority)
    Account {
        lamports: 1_000_000_000,
        data,
        owner: BPF_LOADER_UPGRADEABLE,
        executable: false,
        rent_epoch: 0,
    }
}

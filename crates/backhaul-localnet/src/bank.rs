//! The bank: a `ProgramTestContext` owned by one thread, driven on demand.
//!
//! `BanksClient` futures are tied to the runtime that started the context, so the context lives on
//! a dedicated thread with a current-thread runtime. Everything else sends jobs (closures over
//! `&mut BankState`) through a channel; jobs run one at a time, so requests never interleave
//! inside the bank.
//!
//! solana-program-test spawns a task that registers a new blockhash every 6.4 ms (64 ticks of
//! 100 µs), which would make blockhashes expire after about a second. The runtime is therefore
//! built with a paused clock and only driven while a job runs: that task's timer never comes due,
//! and the blockhash changes only when this module moves the bank to a new slot (after every
//! committed transaction, on clock warps, and on `expire_blockhashes`).

use futures::future::LocalBoxFuture;
use solana_account_decoder::parse_account_data::SplTokenAdditionalDataV2;
use solana_account_decoder::parse_token::{get_token_account_mint, token_amount_to_ui_amount_v3};
use solana_program_test::{BanksClientError, ProgramTest, ProgramTestContext};
use solana_sdk::account::{Account, AccountSharedData};
use solana_sdk::clock::Clock;
use solana_sdk::epoch_schedule::EpochSchedule;
use solana_sdk::hash::Hash;
use solana_sdk::message::compiled_instruction::CompiledInstruction;
use solana_sdk::message::v0::LoadedAddresses;
use solana_sdk::message::{Message, VersionedMessage};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::rent::Rent;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError, VersionedTransaction};
use solana_transaction_status_client_types::{
    InnerInstruction, InnerInstructions, TransactionStatusMeta, TransactionTokenBalance,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

pub(crate) use solana_banks_interface::BanksTransactionResultWithSimulation as Simulation;

/// SPL Token.
pub(crate) const TOKEN_PROGRAM: Pubkey = spl_token_interface::ID;
/// SPL Token-2022.
pub(crate) const TOKEN_2022_PROGRAM: Pubkey =
    solana_sdk::pubkey!("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");
/// The Associated Token Account program.
pub(crate) const ATA_PROGRAM: Pubkey =
    solana_sdk::pubkey!("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL");
const COMPUTE_BUDGET_PROGRAM: Pubkey =
    solana_sdk::pubkey!("ComputeBudget111111111111111111111111111111");
const SYSTEM_PROGRAM: Pubkey = solana_sdk::pubkey!("11111111111111111111111111111111");
/// Owner of the builtin programs (and of a program solana-program-test loads from a host build).
const NATIVE_LOADER: Pubkey = solana_sdk::pubkey!("NativeLoader1111111111111111111111111111111");
/// Size of an address lookup table's header before its addresses.
const LOOKUP_TABLE_META_SIZE: usize = 56;

/// What the bank thread needs to build the bank.
pub(crate) struct BankSetup {
    pub faucet: Keypair,
    pub faucet_lamports: u64,
    pub upgrade_authority: Pubkey,
    pub accounts: Vec<(Pubkey, Account)>,
    pub unix_timestamp: Option<i64>,
    pub follow_wall_clock: bool,
    pub program: crate::ProgramBuild,
}

/// Facts fixed at start, readable without a round trip to the bank thread.
pub(crate) struct StaticInfo {
    pub genesis_hash: Hash,
    pub rent: Rent,
}

type Job = Box<dyn for<'a> FnOnce(&'a mut BankState) -> LocalBoxFuture<'a, ()> + Send>;

enum Msg {
    Job(Job),
    Stop,
}

/// Error of a job: the bank thread is gone, or a job panicked.
#[derive(Debug)]
pub(crate) struct BankGone;

/// A cloneable way to run jobs on the bank thread.
#[derive(Clone)]
pub(crate) struct BankHandle {
    tx: mpsc::UnboundedSender<Msg>,
    pub info: Arc<StaticInfo>,
}

impl BankHandle {
    /// Runs `f` on the bank thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, BankGone>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a mut BankState) -> LocalBoxFuture<'a, R> + Send + 'static,
    {
        let (otx, orx) = oneshot::channel();
        let job: Job = Box::new(move |state: &mut BankState| {
            Box::pin(async move {
                let r = f(state).await;
                let _ = otx.send(r);
            })
        });
        self.tx.send(Msg::Job(job)).map_err(|_| BankGone)?;
        // A dropped sender means the job panicked (the bank thread logs it) or the bank stopped.
        orx.await.map_err(|_| BankGone)
    }

    /// Asks the bank thread to finish after the jobs already queued.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// Starts the bank thread; returns once the bank is ready.
pub(crate) fn spawn(setup: BankSetup) -> anyhow::Result<(BankHandle, JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<StaticInfo>>();
    let thread = std::thread::Builder::new()
        .name("localnet-bank".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let started =
                std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(BankState::start(setup))));
            let mut state = match started {
                Ok(Ok(state)) => state,
                Ok(Err(e)) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                Err(_) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("the bank panicked while starting")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(StaticInfo {
                genesis_hash: state.genesis_hash,
                rent: state.rent.clone(),
            }));
            while let Some(msg) = rx.blocking_recv() {
                let job = match msg {
                    Msg::Job(job) => job,
                    Msg::Stop => break,
                };
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    rt.block_on(async {
                        state.before_job().await;
                        job(&mut state).await;
                        crate::pubsub::publish(&mut state).await;
                    })
                }));
                if ran.is_err() {
                    tracing::error!("a bank job panicked; the request gets an internal error");
                }
            }
            // Drop the context (and its tasks) inside the runtime that owns them.
            rt.block_on(async move { drop(state) });
        })?;
    let info = ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the bank thread exited during startup"))??;
    Ok((
        BankHandle {
            tx,
            info: Arc::new(info),
        },
        thread,
    ))
}

/// A committed (executed, successfully or not) transaction.
#[derive(Clone)]
pub(crate) struct TxRecord {
    pub slot: u64,
    pub block_time: i64,
    pub tx: VersionedTransaction,
    pub meta: TransactionStatusMeta,
    /// Accounts the transaction write-locked (for prioritization fees).
    pub writable: Vec<Pubkey>,
    /// Its compute unit price in micro-lamports.
    pub cu_price: u64,
}

/// What happened to a transaction handed to the bank.
pub(crate) enum Executed {
    /// Executed and recorded (fee charged); `Some` when it failed.
    Committed(Option<TransactionError>),
    /// Rejected before execution (never recorded), as a validator would drop it.
    Dropped(TransactionError),
}

pub(crate) type BankResult<T> = Result<T, BanksClientError>;

/// The bank and everything remembered about it.
pub(crate) struct BankState {
    ctx: ProgramTestContext,
    faucet: Keypair,
    genesis_hash: Hash,
    rent: Rent,
    epoch_schedule: EpochSchedule,
    /// Every account any committed transaction referenced, plus those present at start.
    known: BTreeSet<Pubkey>,
    txs: HashMap<Signature, TxRecord>,
    /// Signatures in processing order.
    order: Vec<Signature>,
    slot: u64,
    base_ts: i64,
    warp_offset: i64,
    follow_wall_clock: bool,
    started: Instant,
    /// Programs running as host builtins through solana-program-test's shim, whose logs need
    /// [`crate::logs::normalize`].
    host_programs: HashSet<Pubkey>,
    /// Websocket subscriptions and the events they wait for.
    pub(crate) pubsub: crate::pubsub::Registry,
}

impl BankState {
    async fn start(setup: BankSetup) -> anyhow::Result<Self> {
        let mut pt = ProgramTest::default();
        // ProgramTest installs a logger printing every instruction at debug level; the logs are in
        // getTransaction / simulateTransaction already, so keep stderr quiet unless RUST_LOG asks.
        agave_logger::setup_with_default("error");
        setup.program.add_to(&mut pt)?;
        let mut known = BTreeSet::new();
        let program_data = crate::program_data_address();
        pt.add_account(
            program_data,
            crate::program_data_account(&setup.upgrade_authority),
        );
        pt.add_account(
            setup.faucet.pubkey(),
            Account {
                lamports: setup.faucet_lamports,
                data: vec![],
                owner: SYSTEM_PROGRAM,
                executable: false,
                rent_epoch: 0,
            },
        );
        known.extend([
            backhaul::ID,
            program_data,
            setup.faucet.pubkey(),
            TOKEN_PROGRAM,
            TOKEN_2022_PROGRAM,
            ATA_PROGRAM,
        ]);
        for (key, account) in setup.accounts {
            pt.add_account(key, account);
            known.insert(key);
        }
        let ctx = pt.start_with_context().await;
        let genesis_hash = ctx.genesis_config().hash();
        let epoch_schedule = ctx.genesis_config().epoch_schedule.clone();
        let rent = ctx.banks_client.get_rent().await?;
        let slot = ctx.banks_client.get_root_slot().await?;
        let base_ts = setup.unix_timestamp.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        let mut state = BankState {
            ctx,
            faucet: setup.faucet,
            genesis_hash,
            rent,
            epoch_schedule,
            known,
            txs: HashMap::new(),
            order: Vec::new(),
            slot,
            base_ts,
            warp_offset: 0,
            follow_wall_clock: setup.follow_wall_clock,
            started: Instant::now(),
            host_programs: HashSet::new(),
            pubsub: Default::default(),
        };
        state.apply_clock().await?;
        state.host_programs = state.find_host_programs().await?;
        Ok(state)
    }

    async fn before_job(&mut self) {
        if self.follow_wall_clock {
            if let Err(e) = self.apply_clock().await {
                tracing::warn!(error = %e, "could not move the clock");
            }
        }
    }

    /// The unix timestamp the clock should show now.
    fn target_ts(&self) -> i64 {
        let wall = if self.follow_wall_clock {
            self.started.elapsed().as_secs() as i64
        } else {
            0
        };
        self.base_ts
            .saturating_add(self.warp_offset)
            .saturating_add(wall)
    }

    /// Writes [`Self::target_ts`] into the working bank's Clock sysvar.
    async fn apply_clock(&mut self) -> BankResult<Clock> {
        let mut clock: Clock = self.ctx.banks_client.get_sysvar().await?;
        let want = self.target_ts();
        if clock.unix_timestamp != want {
            clock.unix_timestamp = want;
            self.ctx.set_sysvar(&clock);
        }
        Ok(clock)
    }

    /// The programs loaded from a host build (owned by the native loader like the builtins, but
    /// run through solana-program-test's shim): the Backhaul program unless it runs as bytecode.
    async fn find_host_programs(&self) -> BankResult<HashSet<Pubkey>> {
        let program = self.ctx.banks_client.get_account(backhaul::ID).await?;
        Ok(program
            .filter(|a| a.owner == NATIVE_LOADER)
            .map(|_| backhaul::ID)
            .into_iter()
            .collect())
    }

    /// Freezes the working bank and continues in the next slot, which registers a new blockhash.
    async fn advance_slot(&mut self) -> BankResult<()> {
        let parent = self.slot;
        let next = self.slot + 1;
        self.ctx
            .warp_to_slot(next)
            .map_err(|_| BanksClientError::ClientError("could not advance the slot"))?;
        self.slot = next;
        self.apply_clock().await?;
        // `warp_to_slot` roots the parent.
        self.pubsub.record(crate::pubsub::Event::Slot {
            parent,
            slot: next,
            root: parent,
        });
        Ok(())
    }

    // ---- reads ------------------------------------------------------------------------------

    pub fn slot(&self) -> u64 {
        self.slot
    }

    pub fn epoch_schedule(&self) -> &EpochSchedule {
        &self.epoch_schedule
    }

    pub fn transaction_count(&self) -> u64 {
        self.order.len() as u64
    }

    pub fn faucet(&self) -> Pubkey {
        self.faucet.pubkey()
    }

    pub async fn block_height(&self) -> BankResult<u64> {
        self.ctx.banks_client.get_root_block_height().await
    }

    pub async fn clock(&self) -> BankResult<Clock> {
        self.ctx.banks_client.get_sysvar().await
    }

    /// The latest blockhash and the last block height at which it is valid.
    pub async fn latest_blockhash(&self) -> BankResult<(Hash, u64)> {
        self.ctx
            .banks_client
            .get_latest_blockhash_with_commitment(Default::default())
            .await?
            .ok_or(BanksClientError::ClientError("no blockhash"))
    }

    /// Whether the bank still accepts transactions with `hash` (probed by simulating an empty
    /// transaction: the age check comes before anything else).
    pub async fn blockhash_valid(&self, hash: Hash) -> BankResult<bool> {
        let payer = Pubkey::new_from_array([7; 32]);
        let message = Message::new_with_blockhash(&[], Some(&payer), &hash);
        let tx = Transaction {
            signatures: vec![Signature::default()],
            message,
        };
        let sim = self.ctx.banks_client.simulate_transaction(tx).await?;
        Ok(!matches!(
            sim.result,
            Some(Err(TransactionError::BlockhashNotFound))
        ))
    }

    pub async fn account(&self, key: Pubkey) -> BankResult<Option<Account>> {
        self.ctx.banks_client.get_account(key).await
    }

    /// The known accounts owned by `owner`, sorted by address.
    pub async fn program_accounts(&self, owner: &Pubkey) -> BankResult<Vec<(Pubkey, Account)>> {
        let mut out = Vec::new();
        for key in &self.known {
            if let Some(account) = self.ctx.banks_client.get_account(*key).await? {
                if account.owner == *owner {
                    out.push((*key, account));
                }
            }
        }
        Ok(out)
    }

    /// The decimals of `mint`, if it is a mint of either token program.
    pub async fn mint_decimals(&self, mint: &Pubkey) -> BankResult<Option<u8>> {
        Ok(self
            .account(*mint)
            .await?
            .and_then(|a| decimals_of_mint(&a)))
    }

    pub fn record(&self, signature: &Signature) -> Option<&TxRecord> {
        self.txs.get(signature)
    }

    /// Recent records, newest last.
    pub fn recent_records(&self, since_slot: u64) -> impl Iterator<Item = &TxRecord> {
        self.order
            .iter()
            .rev()
            .filter_map(|s| self.txs.get(s))
            .take_while(move |r| r.slot >= since_slot)
    }

    // ---- transactions -----------------------------------------------------------------------

    /// Simulates `tx` on the working bank; logs as a validator prints them.
    pub async fn simulate(&self, tx: VersionedTransaction) -> BankResult<Simulation> {
        let mut sim = self.ctx.banks_client.simulate_transaction(tx).await?;
        if let Some(details) = &mut sim.simulation_details {
            details.logs =
                crate::logs::normalize(std::mem::take(&mut details.logs), &self.host_programs);
        }
        Ok(sim)
    }

    /// Tells signature subscribers that `signature` was received for execution.
    pub fn note_received(&mut self, signature: Signature) {
        if self.pubsub.wants_received(&signature) {
            self.pubsub.record(crate::pubsub::Event::Received {
                signature,
                slot: self.slot,
            });
        }
    }

    /// Executes `tx` (signatures must already be verified) and records it if it was committed;
    /// then moves to the next slot so that the blockhash changes.
    ///
    /// `preflight` is a simulation of `tx` made in this same job, if any (one is made otherwise):
    /// the banks client does not return inner instructions from execution, so the record takes
    /// them from the simulation when it ran identically (same result, same logs).
    pub async fn execute(
        &mut self,
        tx: VersionedTransaction,
        preflight: Option<Simulation>,
    ) -> BankResult<Executed> {
        let message = &tx.message;
        let loaded = self.resolve_lookups(message).await?;
        let keys: Vec<Pubkey> = message
            .static_account_keys()
            .iter()
            .chain(loaded.writable.iter())
            .chain(loaded.readonly.iter())
            .copied()
            .collect();
        let pre = self.snapshot(&keys).await?;
        let fee = self.fee_for(message).await?;
        let clock = self.clock().await?;
        let slot = self.slot;
        let sim = match preflight {
            Some(sim) => sim,
            None => self.simulate(tx.clone()).await?,
        };

        let result = self
            .ctx
            .banks_client
            .process_transaction_with_metadata(tx.clone())
            .await?;
        let Some(metadata) = result.metadata else {
            let err = result
                .result
                .err()
                .unwrap_or(TransactionError::UnsupportedVersion);
            return Ok(Executed::Dropped(err));
        };

        let post = self.snapshot(&keys).await?;
        let pre_token = self.token_balances(&pre).await?;
        let post_token = self.token_balances(&post).await?;
        let err = result.result.clone().err();
        let log_messages = crate::logs::normalize(metadata.log_messages, &self.host_programs);
        let inner_instructions = sim.simulation_details.as_ref().and_then(|details| {
            let same = sim.result.as_ref() == Some(&result.result) && details.logs == log_messages;
            if !same {
                tracing::debug!(
                    signature = %tx.signatures[0],
                    "execution differed from its simulation; no inner instructions recorded"
                );
                return None;
            }
            details.inner_instructions.as_deref().map(record_inner)
        });
        let meta = TransactionStatusMeta {
            status: result.result,
            fee,
            pre_balances: pre.iter().map(lamports).collect(),
            post_balances: post.iter().map(lamports).collect(),
            inner_instructions,
            log_messages: Some(log_messages),
            pre_token_balances: Some(pre_token),
            post_token_balances: Some(post_token),
            rewards: Some(vec![]),
            loaded_addresses: loaded.clone(),
            return_data: metadata.return_data,
            compute_units_consumed: Some(metadata.compute_units_consumed),
            cost_units: None,
        };
        let writable = writable_keys(message, &loaded);
        let cu_price = compute_unit_price(message);
        let signature = tx.signatures[0];
        // What the transaction stored: every writable account if it succeeded, else the fee
        // payer (charged the fee).
        let written = if !self.pubsub.wants_accounts() {
            Vec::new()
        } else {
            let stored: Vec<Pubkey> = if err.is_none() {
                writable.clone()
            } else {
                keys.first().copied().into_iter().collect()
            };
            keys.iter()
                .zip(&post)
                .filter(|(k, _)| stored.contains(k))
                .map(|(k, a)| (*k, a.clone()))
                .collect()
        };
        self.known.extend(keys);
        self.order.push(signature);
        self.txs.insert(
            signature,
            TxRecord {
                slot,
                block_time: clock.unix_timestamp,
                tx,
                meta,
                writable,
                cu_price,
            },
        );
        self.pubsub
            .record(crate::pubsub::Event::Committed { signature, written });
        self.advance_slot().await?;
        Ok(Executed::Committed(err))
    }

    /// A transfer of `lamports` from the faucet to `to`, signed with the latest blockhash.
    pub async fn airdrop_transaction(
        &self,
        to: &Pubkey,
        lamports: u64,
    ) -> BankResult<VersionedTransaction> {
        let (blockhash, _) = self.latest_blockhash().await?;
        let ix =
            solana_system_interface::instruction::transfer(&self.faucet.pubkey(), to, lamports);
        let tx = Transaction::new_signed_with_payer(
            &[ix],
            Some(&self.faucet.pubkey()),
            &[&self.faucet],
            blockhash,
        );
        Ok(tx.into())
    }

    // ---- control ----------------------------------------------------------------------------

    /// Moves the clock forward to `unix_timestamp` and the bank to the next slot. Refuses to move
    /// backward; returns the new clock.
    pub async fn warp_clock(&mut self, unix_timestamp: i64) -> Result<Clock, WarpError> {
        let now = self.target_ts();
        if unix_timestamp < now {
            return Err(WarpError::Backward { now });
        }
        self.warp_offset = self.warp_offset.saturating_add(unix_timestamp - now);
        self.advance_slot().await.map_err(WarpError::Bank)?;
        self.clock().await.map_err(WarpError::Bank)
    }

    /// The clock's current unix timestamp as this bank intends it.
    pub fn unix_timestamp(&self) -> i64 {
        self.target_ts()
    }

    /// Advances slot by slot until `hash` (normally the latest blockhash) is no longer valid,
    /// i.e. [`crate::BLOCKHASH_VALIDITY`] + 1 new blockhashes; returns the number of slots.
    pub async fn expire_blockhashes(&mut self) -> BankResult<u64> {
        let (hash, _) = self.latest_blockhash().await?;
        let mut advanced = 0;
        while advanced < crate::BLOCKHASH_VALIDITY + 1 || self.blockhash_valid(hash).await? {
            self.advance_slot().await?;
            advanced += 1;
            if advanced > 4 * crate::BLOCKHASH_VALIDITY {
                break;
            }
        }
        Ok(advanced)
    }

    /// Creates or overwrites an account, bypassing the runtime.
    pub fn set_account(&mut self, key: Pubkey, account: Account) {
        self.ctx
            .set_account(&key, &AccountSharedData::from(account));
        self.known.insert(key);
        self.pubsub.record(crate::pubsub::Event::AccountSet { key });
    }

    // ---- helpers ----------------------------------------------------------------------------

    async fn snapshot(&self, keys: &[Pubkey]) -> BankResult<Vec<Option<Account>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.ctx.banks_client.get_account(*key).await?);
        }
        Ok(out)
    }

    /// The addresses a v0 message loads from lookup tables (empty for legacy messages or when a
    /// table cannot be read; the bank then rejects the transaction anyway).
    async fn resolve_lookups(&self, message: &VersionedMessage) -> BankResult<LoadedAddresses> {
        let mut loaded = LoadedAddresses::default();
        let Some(lookups) = message.address_table_lookups() else {
            return Ok(loaded);
        };
        for lookup in lookups {
            let Some(table) = self.account(lookup.account_key).await? else {
                continue;
            };
            let addresses: Vec<Pubkey> = table
                .data
                .get(LOOKUP_TABLE_META_SIZE..)
                .unwrap_or_default()
                .chunks_exact(32)
                .map(|c| Pubkey::new_from_array(c.try_into().expect("32 bytes")))
                .collect();
            let pick = |idx: &u8| addresses.get(*idx as usize).copied();
            loaded
                .writable
                .extend(lookup.writable_indexes.iter().filter_map(pick));
            loaded
                .readonly
                .extend(lookup.readonly_indexes.iter().filter_map(pick));
        }
        Ok(loaded)
    }

    /// The fee the bank charges for `message` (the bank's own fee calculation, over a legacy
    /// message with the same header, signatures and instructions).
    async fn fee_for(&self, message: &VersionedMessage) -> BankResult<u64> {
        let keys = message.static_account_keys();
        let n = keys.len();
        let legacy = Message {
            header: *message.header(),
            account_keys: keys.to_vec(),
            recent_blockhash: *message.recent_blockhash(),
            instructions: message
                .instructions()
                .iter()
                .map(|ix| CompiledInstruction {
                    program_id_index: ix.program_id_index,
                    accounts: ix
                        .accounts
                        .iter()
                        .copied()
                        .filter(|a| (*a as usize) < n)
                        .collect(),
                    data: ix.data.clone(),
                })
                .collect(),
        };
        Ok(self
            .ctx
            .banks_client
            .get_fee_for_message(legacy)
            .await?
            .unwrap_or(0))
    }

    async fn token_balances(
        &self,
        accounts: &[Option<Account>],
    ) -> BankResult<Vec<TransactionTokenBalance>> {
        let mut out = Vec::new();
        let mut decimals: HashMap<Pubkey, Option<u8>> = HashMap::new();
        for (index, account) in accounts.iter().enumerate() {
            let Some(account) = account else { continue };
            let Some((mint, owner, amount)) = token_account_fields(account) else {
                continue;
            };
            let d = match decimals.get(&mint) {
                Some(d) => *d,
                None => {
                    let d = self.mint_decimals(&mint).await?;
                    decimals.insert(mint, d);
                    d
                }
            };
            let Some(d) = d else { continue };
            out.push(TransactionTokenBalance {
                account_index: index as u8,
                mint: mint.to_string(),
                ui_token_amount: token_amount_to_ui_amount_v3(
                    amount,
                    &SplTokenAdditionalDataV2::with_decimals(d),
                ),
                owner: owner.to_string(),
                program_id: account.owner.to_string(),
            });
        }
        Ok(out)
    }
}

/// Why a clock warp was refused.
#[derive(Debug)]
pub(crate) enum WarpError {
    Backward { now: i64 },
    Bank(BanksClientError),
}

/// A simulation's inner instructions as a transaction's status records them: per top-level
/// instruction that made any, by its index.
fn record_inner(
    inner: &[solana_sdk::message::inner_instruction::InnerInstructions],
) -> Vec<InnerInstructions> {
    inner
        .iter()
        .enumerate()
        .filter(|(_, ixs)| !ixs.is_empty())
        .map(|(index, ixs)| InnerInstructions {
            index: index as u8,
            instructions: ixs
                .iter()
                .map(|ix| InnerInstruction {
                    instruction: ix.instruction.clone(),
                    stack_height: Some(u32::from(ix.stack_height)),
                })
                .collect(),
        })
        .collect()
}

fn lamports(account: &Option<Account>) -> u64 {
    account.as_ref().map_or(0, |a| a.lamports)
}

/// Whether `owner` is one of the token programs.
pub(crate) fn is_token_program(owner: &Pubkey) -> bool {
    *owner == TOKEN_PROGRAM || *owner == TOKEN_2022_PROGRAM
}

/// `(mint, owner, amount)` of a token account of either token program.
pub(crate) fn token_account_fields(account: &Account) -> Option<(Pubkey, Pubkey, u64)> {
    if !is_token_program(&account.owner) {
        return None;
    }
    let mint = get_token_account_mint(&account.data)?;
    let owner = Pubkey::new_from_array(account.data.get(32..64)?.try_into().ok()?);
    let amount = u64::from_le_bytes(account.data.get(64..72)?.try_into().ok()?);
    Some((mint, owner, amount))
}

/// The decimals of a mint account of either token program.
pub(crate) fn decimals_of_mint(account: &Account) -> Option<u8> {
    if !is_token_program(&account.owner) {
        return None;
    }
    // Mint layout: COption<Pubkey> authority (36), supply (8), decimals (1), is_initialized (1);
    // a Token-2022 mint with extensions is padded to 165 bytes and then typed (1 = mint).
    let data = &account.data;
    let is_mint = data.len() == 82 || (data.len() > 165 && data[165] == 1);
    if !is_mint || data[45] != 1 {
        return None;
    }
    Some(data[44])
}

/// The accounts a message write-locks (static keys by header position, then loaded writable).
fn writable_keys(message: &VersionedMessage, loaded: &LoadedAddresses) -> Vec<Pubkey> {
    let header = message.header();
    let keys = message.static_account_keys();
    let signed = header.num_required_signatures as usize;
    let signed_writable = signed.saturating_sub(header.num_readonly_signed_accounts as usize);
    let unsigned_writable_end = keys
        .len()
        .saturating_sub(header.num_readonly_unsigned_accounts as usize);
    keys.iter()
        .enumerate()
        .filter(|(i, _)| *i < signed_writable || (*i >= signed && *i < unsigned_writable_end))
        .map(|(_, k)| *k)
        .chain(loaded.writable.iter().copied())
        .collect()
}

/// The compute unit price (micro-lamports) set by a ComputeBudget instruction, or 0.
pub(crate) fn compute_unit_price(message: &VersionedMessage) -> u64 {
    let keys = message.static_account_keys();
    message
        .instructions()
        .iter()
        .rev()
        .filter(|ix| keys.get(ix.program_id_index as usize) == Some(&COMPUTE_BUDGET_PROGRAM))
        .find_map(|ix| match ix.data.as_slice() {
            [3, rest @ ..] if rest.len() >= 8 => {
                Some(u64::from_le_bytes(rest[..8].try_into().ok()?))
            }
            _ => None,
        })
        .unwrap_or(0)
}

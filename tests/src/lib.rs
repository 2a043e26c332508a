//! Test fixtures: the program running inside a real Agave bank (solana-program-test), SPL Token
//! as real SBF, and builders for every instruction.
//!
//! The program runs as its SBF bytecode (see [`program_build`]), so compute units, stack frames and
//! the heap are those of the SBF virtual machine; every call into SPL Token is the real program.

// solana-program-test marks its whole API as "unstable" from 4.0 on.
#![allow(deprecated)]

use backhaul::state::{EconomicsParams, EmissionParams, EpochProposal};
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{compute_root, Commitment, Leaf, Scope, SumNode};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_localnet::ProgramBuild;
use backhaul_sdk::{ix, Deployment};
use solana_program_test::{BanksClientError, ProgramTest, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

pub use backhaul::instructions::InitializeParams;
pub use backhaul::state::{
    Config, ConsensusParams, CreditAccount, EpochLedger, EpochRecord, EpochStatus,
    GovernanceChange, OperatorClaim, ParamsChange, PendingChange, PriceFeed, PurchaseCheckpoint,
};

/// A claim's or settlement's proof as instructions carry it: the leaf's index and its siblings
/// (hash and sum) from the leaf level up. The default is index 0 with no siblings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proof {
    pub index: u64,
    pub siblings: Vec<SumNode>,
}

/// A leaf's entry and proof in a tree.
pub trait LeafProofs {
    /// `account`'s entry and proof, if it has a leaf.
    fn leaf_proof(&self, account: &[u8; 32]) -> Option<(Entry, Proof)>;
}

impl LeafProofs for EpochTree {
    fn leaf_proof(&self, account: &[u8; 32]) -> Option<(Entry, Proof)> {
        let p = self.proof_for(account)?;
        let entry = Entry {
            account: p.leaf.account,
            cumulative: p.leaf.amount,
        };
        Some((
            entry,
            Proof {
                index: p.index,
                siblings: p.siblings,
            },
        ))
    }
}

/// A full tree of `2^depth` leaves in which made-up siblings (each of sum 0) prove `leaf` at index
/// 0 of `scope`: the commitment (root, total = the leaf's amount, leaf count) and the proof.
pub fn deep_proof(scope: &Scope, leaf: &Leaf, depth: u8) -> (Commitment, Proof) {
    let siblings: Vec<SumNode> = (0..depth)
        .map(|i| SumNode {
            hash: backhaul_core::merkle::sha256v(&[b"sibling", &[i]]),
            sum: 0,
        })
        .collect();
    let commitment = compute_root(scope, leaf, 0, 1 << depth, &siblings).expect("a full tree");
    (commitment, Proof { index: 0, siblings })
}

/// Like [`deep_proof`], with the sibling at the leaf level summing to `rest` (the other leaves'
/// amounts), so that the tree's total is the leaf's amount plus `rest`.
pub fn deep_proof_with_rest(
    scope: &Scope,
    leaf: &Leaf,
    depth: u8,
    rest: u64,
) -> (Commitment, Proof) {
    let siblings: Vec<SumNode> = (0..depth)
        .map(|i| SumNode {
            hash: backhaul_core::merkle::sha256v(&[b"sibling", &[i]]),
            sum: if i == 0 { rest } else { 0 },
        })
        .collect();
    let commitment = compute_root(scope, leaf, 0, 1 << depth, &siblings).expect("a full tree");
    (commitment, Proof { index: 0, siblings })
}

/// A full tree of `2^depth` leaves whose first two leaves are `left` and `right`, in that order
/// (whatever their accounts), the rest made up with sum 0: the commitment and both proofs.
pub fn deep_pair(
    scope: &Scope,
    left: &Leaf,
    right: &Leaf,
    depth: u8,
) -> (Commitment, Proof, Proof) {
    use backhaul_core::sum_tree::{leaf_node, node};
    assert!(depth >= 1);
    let (l, r) = (leaf_node(scope, left), leaf_node(scope, right));
    let upper: Vec<SumNode> = (1..depth)
        .map(|i| SumNode {
            hash: backhaul_core::merkle::sha256v(&[b"sibling", &[i]]),
            sum: 0,
        })
        .collect();
    let mut top = node(&l, &r).expect("sum");
    for sibling in &upper {
        top = node(&top, sibling).expect("sum");
    }
    let commitment = Commitment::new(scope.kind, &top, 1 << depth);
    let proof = |first: SumNode, index: u64| Proof {
        index,
        siblings: std::iter::once(first)
            .chain(upper.iter().copied())
            .collect(),
    };
    (commitment, proof(r, 0), proof(l, 1))
}

/// Epoch length used by the fixtures (one day).
pub const EPOCH_SECS: u64 = 86_400;
/// Challenge period used by the fixtures (six hours).
pub const CHALLENGE_SECS: u64 = 6 * 3_600;
/// Governance delay used by the fixtures: the least the program allows (an epoch and a challenge
/// period).
pub const GOVERNANCE_DELAY_SECS: u64 = EPOCH_SECS + CHALLENGE_SECS;
/// Decimals of the test mint.
pub const DECIMALS: u8 = 6;
/// Tokens (base units) minted before the deployment, all held by the treasury.
pub const TREASURY_SUPPLY: u64 = 1_000_000_000 * 10u64.pow(DECIMALS as u32);
/// Genesis of the fixtures' deployments.
pub const GENESIS: i64 = 1_700_000_000;

/// The compute units of every top-level (`invoke [1]`) invocation of `program` in `logs`, read
/// from the runtime's `Program <id> consumed <n> of <m> compute units` lines.
pub fn top_level_units(logs: &[String], program: &Pubkey) -> Vec<u64> {
    let mut depth = 0usize;
    let mut units = Vec::new();
    let consumed = format!("Program {program} consumed ");
    for line in logs {
        if line.starts_with("Program ") && line.contains(" invoke [") {
            depth += 1;
        } else if line.starts_with("Program ")
            && (line.ends_with(" success") || line.contains(" failed: "))
        {
            depth = depth.saturating_sub(1);
        } else if depth == 1 {
            if let Some(rest) = line.strip_prefix(&consumed) {
                if let Some(n) = rest.split(' ').next().and_then(|n| n.parse().ok()) {
                    units.push(n);
                }
            }
        }
    }
    units
}

/// Keys derived from `seed`, one after another: the same seed gives the same keys.
pub fn seeded_keys(seed: u64) -> impl FnMut() -> Keypair {
    let mut n = 0u64;
    move || {
        n += 1;
        let secret = backhaul_core::merkle::sha256v(&[
            b"backhaul-test-key",
            &seed.to_le_bytes(),
            &n.to_le_bytes(),
        ]);
        Keypair::new_from_array(secret)
    }
}

/// The program build every fixture loads: the SBF bytecode (`target/deploy/backhaul.so`, or
/// `$SBF_OUT_DIR/backhaul.so`), or the host build when `BACKHAUL_PROGRAM=host` asks for it.
/// Panics, saying how to build the bytecode, when it is missing.
pub fn program_build() -> ProgramBuild {
    ProgramBuild::from_env().unwrap_or_else(|e| panic!("{e:#}"))
}

/// The program's ProgramData address (where the upgradeable loader records the upgrade authority).
pub fn program_data_address() -> Pubkey {
    backhaul_sdk::program_data()
}

/// A ProgramData account naming `authority` as the upgrade authority (bincode layout).
pub fn program_data_account(authority: &Pubkey) -> Account {
    let mut data = Vec::with_capacity(45);
    data.extend_from_slice(&3u32.to_le_bytes()); // UpgradeableLoaderState::ProgramData
    data.extend_from_slice(&0u64.to_le_bytes()); // slot
    data.push(1); // Some(
    data.extend_from_slice(authority.as_ref()); // authority)
    Account {
        lamports: 1_000_000_000,
        data,
        owner: anchor_lang::solana_program::bpf_loader_upgradeable::ID,
        executable: false,
        rent_epoch: 0,
    }
}

pub fn config_address(mint: &Pubkey) -> Pubkey {
    Deployment::new(*mint).config
}

pub fn vault_address(config: &Pubkey) -> Pubkey {
    Deployment {
        mint: Pubkey::default(),
        config: *config,
    }
    .vault()
}

pub fn epoch_address(config: &Pubkey, epoch: u64) -> Pubkey {
    Deployment {
        mint: Pubkey::default(),
        config: *config,
    }
    .epoch_record(epoch)
}

pub fn claim_address(config: &Pubkey, operator: &Pubkey) -> Pubkey {
    Deployment {
        mint: Pubkey::default(),
        config: *config,
    }
    .operator_claim(operator)
}

pub fn price_feed_address(config: &Pubkey) -> Pubkey {
    Deployment {
        mint: Pubkey::default(),
        config: *config,
    }
    .price_feed()
}

pub fn ledger_address(config: &Pubkey, epoch: u64) -> Pubkey {
    Deployment {
        mint: Pubkey::default(),
        config: *config,
    }
    .ledger(epoch)
}

pub fn credits_address(config: &Pubkey, buyer: &Pubkey) -> Pubkey {
    Deployment {
        mint: Pubkey::default(),
        config: *config,
    }
    .credits(buyer)
}

pub fn event_authority() -> Pubkey {
    backhaul_sdk::event_authority()
}

pub fn ata(owner: &Pubkey, mint: &Pubkey) -> Pubkey {
    spl_associated_token_account_interface::address::get_associated_token_address(owner, mint)
}

/// Default emission: 1,000 tokens per epoch halving every 30 epochs, floor 10, cap 50,000.
pub fn default_emission() -> EmissionParams {
    EmissionParams {
        initial_per_epoch: 1_000 * 10u64.pow(DECIMALS as u32),
        decay_bps: 5_000,
        decay_period_epochs: 30,
        floor_per_epoch: 10 * 10u64.pow(DECIMALS as u32),
        lifetime_cap: 50_000 * 10u64.pow(DECIMALS as u32),
    }
}

/// Default economics: prices valid for an hour and moving at most 20% per hour, no net emissions
/// (so the sponsor's purchases, see [`Env::paid`], never change a budget; tests of net emissions
/// set a cap) with a 7-epoch average, k = 1 (an epoch mints at most what its buyers paid for the
/// credits they consumed).
pub fn default_economics() -> EconomicsParams {
    EconomicsParams {
        price_max_age_secs: 3_600,
        price_max_change_bps: 2_000,
        net_emissions_cap: 0,
        burn_smoothing_epochs: 7,
        usage_cap_bps: 10_000,
    }
}

/// Default consensus parameters: 50,000 credits per GiB, a 100 GiB pair cap, at most 1 GiB/s,
/// five minutes of grace.
pub fn default_consensus() -> ConsensusParams {
    ConsensusParams {
        credits_per_gib: 50_000,
        pair_cap_bytes: 100 << 30,
        max_rate_bytes_per_sec: 1 << 30,
        grace_secs: 300,
    }
}

/// The price [`Env::paid`] posts when none is fresh: 100,000 credits per token.
pub const SPONSOR_PRICE: u64 = 100_000;

/// One whole token in base units.
pub const TOKEN_UNIT: u64 = 10u64.pow(DECIMALS as u32);

/// A deployment inside a fresh bank, with its keys.
pub struct Env {
    pub ctx: ProgramTestContext,
    pub upgrade_authority: Keypair,
    pub admin: Keypair,
    pub guardian: Keypair,
    pub oracles: Vec<Keypair>,
    /// Holds [`TREASURY_SUPPLY`], the supply minted before the deployment.
    pub treasury: Keypair,
    pub mint: Pubkey,
    pub config: Pubkey,
    pub vault: Pubkey,
    /// The buyer whose paid usage [`Env::paid`] adds to proposals.
    pub sponsor: Keypair,
    /// What the sponsor bought, per deployment and epoch.
    sponsored: std::collections::HashMap<(Pubkey, u64), backhaul_core::cost::Purchases>,
    /// The paid proposal [`Env::sponsored`] made of each (epoch, unpaid proposal).
    sponsored_proposals: std::collections::HashMap<(u64, Vec<u8>), EpochProposal>,
    nonce: u64,
}

/// Error returned by a failed transaction: the custom code (Anchor or program) if any.
pub fn custom_code(err: &BanksClientError) -> Option<u32> {
    match err {
        BanksClientError::TransactionError(TransactionError::InstructionError(
            _,
            InstructionError::Custom(code),
        ))
        | BanksClientError::SimulationError {
            err: TransactionError::InstructionError(_, InstructionError::Custom(code)),
            ..
        } => Some(*code),
        _ => None,
    }
}

/// How many times a transaction the bank refused with `AccountInUse` is sent again. The test
/// bank answers that, now and then, when a transaction arrives while the previous one's account
/// locks are still held (nothing was executed); the program never does.
const BANK_RETRIES: usize = 3;

/// Whether the bank refused a transaction because its accounts were still locked.
fn account_in_use(e: &BanksClientError) -> bool {
    matches!(
        e,
        BanksClientError::TransactionError(TransactionError::AccountInUse)
            | BanksClientError::SimulationError {
                err: TransactionError::AccountInUse,
                ..
            }
    )
}

/// Asserts that `res` failed with the program error `expected`.
#[track_caller]
pub fn assert_program_err(
    res: Result<(), BanksClientError>,
    expected: backhaul::error::BackhaulError,
) {
    let code = anchor_lang::error::ERROR_CODE_OFFSET + expected as u32;
    match res {
        Ok(()) => panic!("expected {expected:?} ({code}), but the transaction succeeded"),
        Err(e) => assert_eq!(
            custom_code(&e),
            Some(code),
            "expected {expected:?} ({code}), got {e:?}"
        ),
    }
}

/// Asserts that `res` failed with the Anchor framework error `expected`.
#[track_caller]
pub fn assert_anchor_err(
    res: Result<(), BanksClientError>,
    expected: anchor_lang::error::ErrorCode,
) {
    let code = expected as u32;
    match res {
        Ok(()) => panic!("expected {expected:?} ({code}), but the transaction succeeded"),
        Err(e) => assert_eq!(
            custom_code(&e),
            Some(code),
            "expected {expected:?} ({code}), got {e:?}"
        ),
    }
}

/// Asserts that `res` failed, for any reason that is not a success.
#[track_caller]
pub fn assert_failed(res: Result<(), BanksClientError>) {
    assert!(res.is_err(), "expected the transaction to fail");
}

impl Env {
    /// A bank with the program, a mint whose authority is the would-be config PDA, and funded keys.
    pub async fn new_uninitialized() -> Self {
        Self::new_uninitialized_with_keys(&mut Keypair::new).await
    }

    /// Like [`Env::new_uninitialized`], with every key (and so every PDA's bump) fixed by `seed`:
    /// compute-unit figures then do not wander with the PDA bump search.
    pub async fn new_uninitialized_seeded(seed: u64) -> Self {
        let mut keys = seeded_keys(seed);
        Self::new_uninitialized_with_keys(&mut keys).await
    }

    /// A deployment initialized with [`Env::default_params`], its keys fixed by `seed`.
    pub async fn new_seeded(seed: u64) -> Self {
        let mut env = Self::new_uninitialized_seeded(seed).await;
        let params = env.default_params();
        env.initialize(params).await.expect("initialize");
        env
    }

    async fn new_uninitialized_with_keys(next_key: &mut dyn FnMut() -> Keypair) -> Self {
        quiet_bank_logs();
        let mut pt = ProgramTest::default();
        program_build()
            .add_to(&mut pt)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let upgrade_authority = next_key();
        pt.add_account(
            program_data_address(),
            program_data_account(&upgrade_authority.pubkey()),
        );
        let admin = next_key();
        let guardian = next_key();
        let oracles: Vec<Keypair> = (0..3).map(|_| next_key()).collect();
        for k in [&upgrade_authority, &admin, &guardian]
            .into_iter()
            .chain(oracles.iter())
        {
            pt.add_account(k.pubkey(), funded());
        }
        let mint_kp = next_key();
        let mint = mint_kp.pubkey();
        let config = config_address(&mint);
        pt.add_account(mint, mint_account(Some(config), None, TREASURY_SUPPLY));
        let treasury = next_key();
        pt.add_account(treasury.pubkey(), funded());
        pt.add_account(
            ata(&treasury.pubkey(), &mint),
            token_account(&mint, &treasury.pubkey(), TREASURY_SUPPLY),
        );
        let mut ctx = pt.start_with_context().await;
        set_time(&mut ctx, GENESIS).await;
        Env {
            ctx,
            upgrade_authority,
            admin,
            guardian,
            oracles,
            treasury,
            mint,
            config,
            vault: vault_address(&config),
            sponsor: Keypair::new_from_array(backhaul_core::merkle::sha256v(&[
                b"backhaul-test-sponsor",
            ])),
            sponsored: Default::default(),
            sponsored_proposals: Default::default(),
            nonce: 0,
        }
    }

    /// A deployment initialized with [`Env::default_params`].
    pub async fn new() -> Self {
        let mut env = Self::new_uninitialized().await;
        let params = env.default_params();
        env.initialize(params).await.expect("initialize");
        env
    }

    /// Creates and initializes a second deployment (its own mint and config) in the same bank and
    /// returns its mint. Point `mint`, `config` and `vault` at it to act on it.
    pub async fn add_deployment(&mut self) -> Pubkey {
        let mint = Pubkey::new_unique();
        let config = config_address(&mint);
        self.ctx.set_account(
            &mint,
            &mint_account(Some(config), None, TREASURY_SUPPLY).into(),
        );
        // The treasury holds this mint's supply too.
        let treasury = self.treasury.pubkey();
        self.ctx.set_account(
            &ata(&treasury, &mint),
            &token_account(&mint, &treasury, TREASURY_SUPPLY).into(),
        );
        let auth = self.upgrade_authority.insecure_clone();
        let params = self.default_params();
        let ix = self.initialize_ix_for(&auth.pubkey(), &mint, params);
        self.send(&[ix], &[&auth])
            .await
            .expect("initialize second deployment");
        mint
    }

    /// Points the fixture at the deployment of `mint`.
    pub fn use_deployment(&mut self, mint: Pubkey) {
        self.mint = mint;
        self.config = config_address(&mint);
        self.vault = vault_address(&self.config);
    }

    pub fn default_params(&self) -> InitializeParams {
        InitializeParams {
            admin: self.admin.pubkey(),
            guardians: vec![self.guardian.pubkey()],
            oracles: self.oracles.iter().map(|k| k.pubkey()).collect(),
            threshold: 2,
            genesis_ts: GENESIS,
            epoch_length_secs: EPOCH_SECS,
            challenge_period_secs: CHALLENGE_SECS,
            governance_delay_secs: GOVERNANCE_DELAY_SECS,
            emission: default_emission(),
            rate_window_secs: EPOCH_SECS,
            rate_capacity: 2 * default_emission().initial_per_epoch,
            economics: default_economics(),
            consensus: default_consensus(),
        }
    }

    /// The deployment the fixture points at.
    pub fn deployment(&self) -> Deployment {
        Deployment {
            mint: self.mint,
            config: self.config,
        }
    }

    pub fn payer(&self) -> Keypair {
        self.ctx.payer.insecure_clone()
    }

    /// Sends `ixs` signed by the payer and `signers`, each transaction made unique so that
    /// identical instructions can be sent twice.
    pub async fn send(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<(), BanksClientError> {
        for _ in 0..BANK_RETRIES {
            match self.send_once(ixs, signers).await {
                Err(e) if account_in_use(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
        self.send_once(ixs, signers).await
    }

    async fn send_once(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<(), BanksClientError> {
        self.nonce += 1;
        let mut all = vec![
            solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_price(
                self.nonce,
            ),
        ];
        all.extend_from_slice(ixs);
        let payer = self.payer();
        let mut keys: Vec<&Keypair> = vec![&payer];
        keys.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(
            &all,
            Some(&payer.pubkey()),
            &keys,
            self.ctx.last_blockhash,
        );
        self.ctx.banks_client.process_transaction(tx).await
    }

    /// Like [`Env::send`], and returns the compute units the Backhaul program's top-level
    /// instruction used (its `consumed` log line; inner invocations included). `ixs` must hold
    /// exactly one instruction of the program.
    pub async fn send_metered(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<u64, BanksClientError> {
        for _ in 0..BANK_RETRIES {
            match self.send_metered_once(ixs, signers).await {
                Err(e) if account_in_use(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
        self.send_metered_once(ixs, signers).await
    }

    async fn send_metered_once(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<u64, BanksClientError> {
        self.nonce += 1;
        let mut all = vec![
            solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_price(
                self.nonce,
            ),
        ];
        all.extend_from_slice(ixs);
        let payer = self.payer();
        let mut keys: Vec<&Keypair> = vec![&payer];
        keys.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(
            &all,
            Some(&payer.pubkey()),
            &keys,
            self.ctx.last_blockhash,
        );
        let res = self
            .ctx
            .banks_client
            .process_transaction_with_metadata(tx)
            .await?;
        res.result.map_err(BanksClientError::TransactionError)?;
        let logs = res.metadata.map(|m| m.log_messages).unwrap_or_default();
        if std::env::var_os("BACKHAUL_PRINT_LOGS").is_some() {
            println!("{}", logs.join("\n"));
        }
        let units = top_level_units(&logs, &backhaul::ID);
        match units.as_slice() {
            [u] => Ok(*u),
            other => {
                panic!("expected one top-level Backhaul instruction, found {other:?} in {logs:#?}")
            }
        }
    }

    pub async fn now(&mut self) -> i64 {
        self.ctx
            .banks_client
            .get_sysvar::<Clock>()
            .await
            .expect("clock")
            .unix_timestamp
    }

    /// Moves the bank's clock to `ts`.
    pub async fn set_time(&mut self, ts: i64) {
        set_time(&mut self.ctx, ts).await;
    }

    /// Moves the clock to the end of `epoch`.
    pub async fn end_epoch(&mut self, epoch: u64) {
        let end = backhaul_core::epoch::epoch_end(GENESIS, EPOCH_SECS, epoch).expect("end");
        self.set_time(end).await;
    }

    pub async fn account<T: anchor_lang::AccountDeserialize>(&mut self, key: &Pubkey) -> Option<T> {
        let acc = self
            .ctx
            .banks_client
            .get_account(*key)
            .await
            .expect("get_account")?;
        T::try_deserialize(&mut acc.data.as_slice()).ok()
    }

    pub async fn config_state(&mut self) -> Config {
        let key = self.config;
        self.account(&key).await.expect("config exists")
    }

    pub async fn epoch_state(&mut self, epoch: u64) -> EpochRecord {
        let key = epoch_address(&self.config, epoch);
        self.account(&key).await.expect("epoch record exists")
    }

    pub async fn token_balance(&mut self, key: &Pubkey) -> u64 {
        let acc = self
            .ctx
            .banks_client
            .get_account(*key)
            .await
            .expect("get")
            .expect("token account exists");
        spl_token_interface::state::Account::unpack(&acc.data)
            .expect("token account")
            .amount
    }

    pub async fn mint_supply(&mut self) -> u64 {
        let acc = self
            .ctx
            .banks_client
            .get_account(self.mint)
            .await
            .expect("get")
            .expect("mint");
        spl_token_interface::state::Mint::unpack(&acc.data)
            .expect("mint")
            .supply
    }

    /// Creates a token account of `mint` owned by `owner` at a fresh address (not an ATA).
    pub async fn create_token_account(&mut self, mint: &Pubkey, owner: &Pubkey) -> Pubkey {
        let key = Pubkey::new_unique();
        self.ctx
            .set_account(&key, &token_account(mint, owner, 0).into());
        key
    }

    /// Creates (idempotently) `owner`'s associated token account for the deployment's mint.
    pub async fn create_ata(&mut self, owner: &Pubkey) -> Pubkey {
        let payer = self.payer().pubkey();
        let ix = spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &payer,
            owner,
            &self.mint,
            &spl_token_interface::ID,
        );
        self.send(&[ix], &[]).await.expect("create ata");
        ata(owner, &self.mint)
    }

    // ---- instruction builders ------------------------------------------------------------

    pub fn initialize_ix(&self, initializer: &Pubkey, params: InitializeParams) -> Instruction {
        self.initialize_ix_for(initializer, &self.mint, params)
    }

    pub fn initialize_ix_for(
        &self,
        initializer: &Pubkey,
        mint: &Pubkey,
        params: InitializeParams,
    ) -> Instruction {
        ix::initialize(&Deployment::new(*mint), initializer, params)
    }

    pub async fn initialize(&mut self, params: InitializeParams) -> Result<(), BanksClientError> {
        let auth = self.upgrade_authority.insecure_clone();
        let ix = self.initialize_ix(&auth.pubkey(), params);
        self.send(&[ix], &[&auth]).await
    }

    pub fn propose_ix(&self, oracle: &Pubkey, epoch: u64, proposal: EpochProposal) -> Instruction {
        ix::propose_root(&self.deployment(), oracle, epoch, proposal)
    }

    /// Oracle `i` votes for `proposal` in `epoch` (made paid for by [`Env::sponsored`] when it
    /// has an allocation but no paid usage), sealing the epoch's ledger first if it can.
    pub async fn vote(
        &mut self,
        i: usize,
        epoch: u64,
        proposal: EpochProposal,
    ) -> Result<(), BanksClientError> {
        let ledger = ledger_address(&self.config, epoch);
        let sealed = self
            .account::<EpochLedger>(&ledger)
            .await
            .is_some_and(|l| l.sealed);
        let proposal = self.sponsored(epoch, proposal).await;
        if !sealed {
            // Before the epoch ends this fails; the vote then shows why.
            let _ = self.seal(epoch).await;
        }
        let oracle = self.oracles[i].insecure_clone();
        let ix = self.propose_ix(&oracle.pubkey(), epoch, proposal);
        self.send(&[ix], &[&oracle]).await
    }

    pub fn veto_ix(&self, guardian: &Pubkey, epoch: u64) -> Instruction {
        ix::veto(&self.deployment(), guardian, epoch)
    }

    pub async fn veto(&mut self, epoch: u64) -> Result<(), BanksClientError> {
        let g = self.guardian.insecure_clone();
        let ix = self.veto_ix(&g.pubkey(), epoch);
        self.send(&[ix], &[&g]).await
    }

    pub fn finalize_ix(&self, epoch: u64) -> Instruction {
        ix::finalize(&self.deployment(), epoch)
    }

    pub async fn finalize(&mut self, epoch: u64) -> Result<(), BanksClientError> {
        let ix = self.finalize_ix(epoch);
        self.send(&[ix], &[]).await
    }

    pub fn claim_ix(
        &self,
        payer: &Pubkey,
        epoch: u64,
        operator: &Pubkey,
        recipient: &Pubkey,
        cumulative: u64,
        proof: Proof,
    ) -> Instruction {
        ix::claim(
            &self.deployment(),
            payer,
            epoch,
            operator,
            recipient,
            cumulative,
            proof.index,
            &proof.siblings,
        )
    }

    /// Claims for `operator` into its ATA, paid by the context payer, proving against `tree`.
    pub async fn claim_from(
        &mut self,
        tree: &EpochTree,
        epoch: u64,
        operator: &Pubkey,
    ) -> Result<(), BanksClientError> {
        let (entry, proof) = tree
            .leaf_proof(&operator.to_bytes())
            .expect("operator has a leaf");
        let recipient = self.create_ata(operator).await;
        let payer = self.payer().pubkey();
        let ix = self.claim_ix(&payer, epoch, operator, &recipient, entry.cumulative, proof);
        self.send(&[ix], &[]).await
    }

    pub fn seal_ix(&self, payer: &Pubkey, epoch: u64) -> Instruction {
        ix::seal_epoch(&self.deployment(), payer, epoch)
    }

    /// Creates the deployment's address lookup table (`backhaul_sdk::lookup_table`), paid and
    /// owned by the context payer, and moves the bank on a slot so that it can be used.
    pub async fn create_lookup_table(&mut self) -> solana_sdk::message::AddressLookupTableAccount {
        let slot_hashes: solana_sdk::slot_hashes::SlotHashes = self
            .ctx
            .banks_client
            .get_sysvar()
            .await
            .expect("slot hashes");
        let recent_slot = slot_hashes.first().expect("a recent slot").0;
        let payer = self.payer().pubkey();
        let (ixs, key) =
            backhaul_sdk::lookup_table::create(&self.deployment(), &payer, &payer, recent_slot);
        self.send(&ixs, &[]).await.expect("lookup table");
        let slot = self.ctx.banks_client.get_root_slot().await.expect("slot");
        self.ctx.warp_to_slot(slot + 2).expect("warp");
        solana_sdk::message::AddressLookupTableAccount {
            key,
            addresses: self.deployment().lookup_table_addresses(),
        }
    }

    /// Seals `epoch`'s ledger, paid by the context payer.
    pub async fn seal(&mut self, epoch: u64) -> Result<(), BanksClientError> {
        let payer = self.payer().pubkey();
        let ix = self.seal_ix(&payer, epoch);
        self.send(&[ix], &[]).await
    }

    pub fn submit_price_ix(&self, oracle: &Pubkey, credits_per_token: u64) -> Instruction {
        ix::submit_price(&self.deployment(), oracle, credits_per_token)
    }

    /// Oracle `i` submits a price.
    pub async fn submit_price(
        &mut self,
        i: usize,
        credits_per_token: u64,
    ) -> Result<(), BanksClientError> {
        let oracle = self.oracles[i].insecure_clone();
        let ix = self.submit_price_ix(&oracle.pubkey(), credits_per_token);
        self.send(&[ix], &[&oracle]).await
    }

    /// Oracles 0 and 1 post `credits_per_token`; panics unless it is then the posted price (a
    /// price beyond the band of the previous one needs the clock moved on first).
    pub async fn post_price(&mut self, credits_per_token: u64) {
        self.submit_price(0, credits_per_token)
            .await
            .expect("price 0");
        self.submit_price(1, credits_per_token)
            .await
            .expect("price 1");
        let feed: PriceFeed = self
            .account(&price_feed_address(&self.config))
            .await
            .expect("price feed");
        assert_eq!(
            feed.credits_per_token, credits_per_token,
            "the posted price is clamped to the band of the previous one"
        );
    }

    /// The deployment's price feed.
    pub async fn price_feed(&mut self) -> PriceFeed {
        let key = price_feed_address(&self.config);
        self.account(&key).await.expect("price feed")
    }

    /// The ledger epoch a purchase sent now lands in.
    pub async fn current_epoch(&mut self) -> u64 {
        let now = self.now().await;
        backhaul_core::epoch::epoch_at(GENESIS, EPOCH_SECS, now).unwrap_or(0)
    }

    pub async fn buy_credits_ix(
        &mut self,
        payer: &Pubkey,
        payer_tokens: &Pubkey,
        token_amount: u64,
        min_credits: u64,
        beneficiary: Pubkey,
    ) -> Instruction {
        let epoch = self.current_epoch().await;
        ix::buy_credits(
            &self.deployment(),
            payer,
            payer_tokens,
            token_amount,
            min_credits,
            beneficiary,
            epoch,
        )
    }

    /// `buyer` burns `token_amount` from its ATA for credits of `beneficiary`.
    pub async fn buy(
        &mut self,
        buyer: &Keypair,
        token_amount: u64,
        min_credits: u64,
        beneficiary: Pubkey,
    ) -> Result<(), BanksClientError> {
        let tokens = ata(&buyer.pubkey(), &self.mint);
        let ix = self
            .buy_credits_ix(
                &buyer.pubkey(),
                &tokens,
                token_amount,
                min_credits,
                beneficiary,
            )
            .await;
        self.send(&[ix], &[buyer]).await
    }

    pub fn settle_ix(
        &self,
        payer: &Pubkey,
        epoch: u64,
        buyer: &Pubkey,
        consumed_cumulative: u64,
        proof: Proof,
    ) -> Instruction {
        ix::settle_usage(
            &self.deployment(),
            payer,
            epoch,
            buyer,
            consumed_cumulative,
            proof.index,
            &proof.siblings,
        )
    }

    /// Settles `buyer`'s leaf of `tree` (a usage tree) against its epoch.
    pub async fn settle_from(
        &mut self,
        tree: &EpochTree,
        buyer: &Pubkey,
    ) -> Result<(), BanksClientError> {
        let (entry, proof) = tree
            .leaf_proof(&buyer.to_bytes())
            .expect("buyer has a leaf");
        let payer = self.payer().pubkey();
        let ix = self.settle_ix(&payer, tree.epoch, buyer, entry.cumulative, proof);
        self.send(&[ix], &[]).await
    }

    /// Sends `amount` tokens from the treasury (which holds the supply minted before the
    /// deployment) to `owner`'s ATA with a real SPL Token transfer, and returns the ATA.
    pub async fn give_tokens(&mut self, owner: &Pubkey, amount: u64) -> Pubkey {
        let account = self.create_ata(owner).await;
        let treasury = self.treasury.insecure_clone();
        let ix = spl_token_interface::instruction::transfer(
            &spl_token_interface::ID,
            &ata(&treasury.pubkey(), &self.mint),
            &account,
            &treasury.pubkey(),
            &[],
            amount,
        )
        .expect("transfer ix");
        self.send(&[ix], &[&treasury])
            .await
            .expect("treasury transfer");
        account
    }

    pub fn queue_change_ix(
        &self,
        admin: &Pubkey,
        id: u64,
        change: GovernanceChange,
    ) -> Instruction {
        ix::queue_change(&self.deployment(), admin, id, change)
    }

    /// `cancel_change` of a change the admin queued.
    pub fn cancel_change_ix(&self, authority: &Pubkey, id: u64) -> Instruction {
        ix::cancel_change(&self.deployment(), authority, id, &self.admin.pubkey())
    }

    /// `apply_change` of a change the admin queued.
    pub fn apply_change_ix(&self, id: u64) -> Instruction {
        ix::apply_change(&self.deployment(), id, &self.admin.pubkey())
    }

    /// The id the next queued change gets.
    pub async fn next_change_id(&mut self) -> u64 {
        self.config_state().await.next_change_id
    }

    /// The admin queues `change`; returns its id.
    pub async fn queue(&mut self, change: GovernanceChange) -> Result<u64, BanksClientError> {
        let id = self.next_change_id().await;
        let admin = self.admin.insecure_clone();
        let ix = self.queue_change_ix(&admin.pubkey(), id, change);
        self.send(&[ix], &[&admin]).await?;
        Ok(id)
    }

    /// Applies change `id` (signed by the payer: anyone may apply).
    pub async fn apply(&mut self, id: u64) -> Result<(), BanksClientError> {
        let ix = self.apply_change_ix(id);
        self.send(&[ix], &[]).await
    }

    /// Moves the clock to when change `id` becomes executable.
    pub async fn wait_for_change(&mut self, id: u64) {
        let key = self.deployment().pending_change(id);
        let change: PendingChange = self.account(&key).await.expect("queued change");
        let now = self.now().await;
        self.set_time(change.executable_at.max(now)).await;
    }

    /// The whole governance path: queue, wait out the delay, apply. Returns the change's id.
    pub async fn govern(&mut self, change: GovernanceChange) -> Result<u64, BanksClientError> {
        let id = self.queue(change).await?;
        self.wait_for_change(id).await;
        self.apply(id).await?;
        Ok(id)
    }

    pub fn propose_admin_ix(&self, admin: &Pubkey, new_admin: Pubkey) -> Instruction {
        ix::propose_admin(&self.deployment(), admin, new_admin)
    }

    pub fn accept_admin_ix(&self, new_admin: &Pubkey) -> Instruction {
        ix::accept_admin(&self.deployment(), new_admin)
    }

    pub fn set_paused_ix(&self, authority: &Pubkey, paused: bool) -> Instruction {
        ix::set_paused(&self.deployment(), authority, paused)
    }

    /// Sends one of the admin instructions signed by `signer`.
    pub async fn send_as(
        &mut self,
        ix: Instruction,
        signer: &Keypair,
    ) -> Result<(), BanksClientError> {
        self.send(&[ix], &[signer]).await
    }

    // ---- fraud proofs and bonds -------------------------------------------------------------

    /// Opens `owner`'s proof buffer `id` and writes `payload` into it, one transaction per
    /// instruction of [`backhaul_sdk::buffer::fill`].
    pub async fn fill_buffer(
        &mut self,
        owner: &Keypair,
        id: u64,
        payload: &[u8],
    ) -> Result<(), BanksClientError> {
        for ix in backhaul_sdk::buffer::fill(&self.deployment(), &owner.pubkey(), id, payload) {
            self.send(&[ix], &[owner]).await?;
        }
        Ok(())
    }

    /// The oracles whose votes in the current round of `epoch` are for the proposal with quorum,
    /// in vote order: the bonds a fraud proof slashes.
    pub async fn voters_of_proposal(&mut self, epoch: u64) -> Vec<Pubkey> {
        let r = self.epoch_state(epoch).await;
        r.votes
            .iter()
            .filter(|v| v.digest == r.proposal_digest)
            .map(|v| v.oracle)
            .collect()
    }

    /// The `prove_fraud` instruction for `epoch` with `prover`'s buffer `id`, naming the
    /// proposal's voters' bonds.
    pub async fn prove_fraud_ix(
        &mut self,
        prover: &Pubkey,
        epoch: u64,
        id: u64,
        earlier: Option<u64>,
        buyer: Option<&Pubkey>,
    ) -> Instruction {
        let voters = self.voters_of_proposal(epoch).await;
        ix::prove_fraud(
            &self.deployment(),
            prover,
            epoch,
            id,
            earlier,
            buyer,
            &voters,
        )
    }

    /// `prover` writes `proof` into a new buffer and sends `prove_fraud` for `epoch` with it.
    pub async fn prove_fraud(
        &mut self,
        prover: &Keypair,
        epoch: u64,
        proof: &backhaul::state::FraudProof,
        earlier: Option<u64>,
        buyer: Option<&Pubkey>,
    ) -> Result<(), BanksClientError> {
        self.nonce += 1;
        let id = self.nonce;
        self.fill_buffer(prover, id, &backhaul_sdk::fraud::payload(proof))
            .await?;
        let ix = self
            .prove_fraud_ix(&prover.pubkey(), epoch, id, earlier, buyer)
            .await;
        self.send(&[ix], &[prover]).await
    }

    /// Oracle `i` bonds `lamports`.
    pub async fn deposit_bond(&mut self, i: usize, lamports: u64) -> Result<(), BanksClientError> {
        let oracle = self.oracles[i].insecure_clone();
        let ix = ix::deposit_bond(&self.deployment(), &oracle.pubkey(), lamports);
        self.send(&[ix], &[&oracle]).await
    }

    /// Lamports held by `key` (0 when it has no account).
    pub async fn lamports(&mut self, key: &Pubkey) -> u64 {
        self.ctx
            .banks_client
            .get_balance(*key)
            .await
            .expect("get_balance")
    }

    // ---- scenario helpers ------------------------------------------------------------------

    /// The reward tree for `epoch` over `(operator, cumulative)` pairs.
    pub fn reward_tree(&self, epoch: u64, amounts: &[(Pubkey, u64)]) -> EpochTree {
        let entries = amounts
            .iter()
            .map(|(k, a)| Entry {
                account: k.to_bytes(),
                cumulative: *a,
            })
            .collect();
        EpochTree::build(TreeKind::Reward, &self.config.to_bytes(), epoch, entries).expect("tree")
    }

    /// The usage tree for `epoch` over `(buyer, cumulative credits consumed)` pairs.
    pub fn usage_tree(&self, epoch: u64, amounts: &[(Pubkey, u64)]) -> EpochTree {
        let entries = amounts
            .iter()
            .map(|(k, a)| Entry {
                account: k.to_bytes(),
                cumulative: *a,
            })
            .collect();
        EpochTree::build(TreeKind::Usage, &self.config.to_bytes(), epoch, entries).expect("tree")
    }

    /// The proposal matching the reward `tree` with an empty usage tree, given the previous
    /// finalized reward total.
    pub fn proposal(&self, tree: &EpochTree, previous_total: u64) -> EpochProposal {
        let usage = self.usage_tree(tree.epoch, &[]);
        self.proposal_with_usage(tree, previous_total, &usage, 0)
    }

    /// The proposal matching both trees, given the previous finalized totals.
    pub fn proposal_with_usage(
        &self,
        rewards: &EpochTree,
        previous_reward_total: u64,
        usage: &EpochTree,
        previous_usage_total: u64,
    ) -> EpochProposal {
        EpochProposal {
            reward_root: rewards.root,
            reward_leaf_count: rewards.leaf_count(),
            reward_total: rewards.total,
            allocation: rewards.total - previous_reward_total,
            dataset_hash: backhaul_core::merkle::sha256v(&[b"dataset", &rewards.root, &usage.root]),
            usage_root: usage.root,
            usage_leaf_count: usage.leaf_count(),
            usage_total: usage.total,
            credits_consumed: usage.total - previous_usage_total,
            usage_cost_total: 0,
            usage_cost: 0,
        }
    }

    /// `proposal` as [`Env::vote`] sends it: a proposal of an ended `epoch` with an allocation but
    /// no paid usage (empty usage tree, zero cost) is made paid for by the sponsor ([`Env::paid`]),
    /// once per epoch and proposal (later votes for the same proposal get the same paid one).
    /// Anything else, or a proposal the sponsor cannot pay for, is returned unchanged, so the vote
    /// shows why it fails.
    pub async fn sponsored(&mut self, epoch: u64, proposal: EpochProposal) -> EpochProposal {
        if !self.needs_sponsor(&proposal).await {
            return proposal;
        }
        // Before the epoch's end the vote fails anyway; leave its ledger untouched.
        let end = backhaul_core::epoch::epoch_end(GENESIS, EPOCH_SECS, epoch).expect("end");
        if self.now().await < end {
            return proposal;
        }
        let key = (
            epoch,
            anchor_lang::prelude::borsh::to_vec(&proposal).expect("proposal bytes"),
        );
        if let Some(p) = self.sponsored_proposals.get(&key) {
            return *p;
        }
        match self.paid(epoch, proposal).await {
            Ok(paid) => {
                self.sponsored_proposals.insert(key, paid);
                paid
            }
            Err(_) => proposal,
        }
    }

    /// Whether [`Env::sponsored`] would pay for `proposal`: it has no usage tree of its own and
    /// either an allocation or a predecessor whose usage tree (the sponsor's) it must keep.
    async fn needs_sponsor(&mut self, proposal: &EpochProposal) -> bool {
        let empty = backhaul_core::sum_tree::empty_root(TreeKind::Usage);
        if proposal.usage_cost != 0
            || proposal.usage_leaf_count != 0
            || proposal.usage_root != empty
        {
            return false;
        }
        proposal.allocation > 0 || self.config_state().await.last_usage_total > 0
    }

    /// What the sponsor bought in the current deployment, in all epochs.
    pub fn sponsor_bought(&self) -> backhaul_core::cost::Purchases {
        self.sponsor_bought_through(u64::MAX)
    }

    /// What the sponsor bought in the current deployment through `epoch`.
    pub fn sponsor_bought_through(&self, epoch: u64) -> backhaul_core::cost::Purchases {
        let mut total = backhaul_core::cost::Purchases::default();
        for ((config, e), p) in &self.sponsored {
            if *config == self.config && *e <= epoch {
                total.credits += p.credits;
                total.tokens += p.tokens;
            }
        }
        total
    }

    /// Makes `proposal` (of `epoch`, with an empty usage tree) paid for by the sponsor, a buyer
    /// whose nodes are not the operators of the reward tree: its usage tree becomes the sponsor's
    /// consumption at a cost of the allocation, so with k = 1 the allocation fits the paid-usage
    /// cap. When what the sponsor bought through `epoch` and has not consumed yet does not cover
    /// the allocation, it first buys the rest (at least one token) in `epoch`, at its last second
    /// when the clock has already passed its end (the clock is set back for the purchase and
    /// forward again, as if bought just before the end), posting [`SPONSOR_PRICE`] when no price
    /// is fresh. Fails when that purchase cannot be made (paused, a sealed ledger, no current
    /// oracle to post a price) or the usage trees hold another buyer.
    pub async fn paid(
        &mut self,
        epoch: u64,
        proposal: EpochProposal,
    ) -> Result<EpochProposal, String> {
        let config = self.config_state().await;
        let consumed = backhaul_core::cost::Consumed {
            credits: config.last_usage_total,
            cost: config.last_usage_cost_total,
        };
        if consumed.credits > 0 {
            // The last finalized usage tree must be the sponsor's alone.
            let last = config.next_epoch - 1;
            let root = self.epoch_state(last).await.proposal.usage_root;
            let sponsor_only = self.usage_tree(last, &[(self.sponsor.pubkey(), consumed.credits)]);
            if root != sponsor_only.root {
                return Err("the usage trees hold another buyer than the sponsor".into());
            }
        }
        let cost = consumed
            .cost
            .checked_add(proposal.allocation)
            .ok_or("overflow")?;
        if self.sponsor_bought_through(epoch).tokens < cost {
            let now = self.now().await;
            let end = backhaul_core::epoch::epoch_end(GENESIS, EPOCH_SECS, epoch).expect("end");
            if now >= end {
                self.set_time(end - 1).await;
            }
            let bought = self
                .sponsor_buys(
                    epoch,
                    (cost - self.sponsor_bought_through(epoch).tokens).max(TOKEN_UNIT),
                )
                .await;
            if now >= end {
                self.set_time(now).await;
            }
            bought?;
        }
        // Consumption in proportion to the cost, rising by at least one credit when it costs.
        let bought = self.sponsor_bought_through(epoch);
        let credits = if proposal.allocation == 0 {
            consumed.credits
        } else {
            let by_cost = u64::try_from(
                (u128::from(cost) * u128::from(bought.credits)).div_ceil(u128::from(bought.tokens)),
            )
            .map_err(|_| "overflow")?;
            by_cost.max(consumed.credits + 1).min(bought.credits)
        };
        let usage = self.usage_tree(epoch, &[(self.sponsor.pubkey(), credits)]);
        let paid = EpochProposal {
            usage_root: usage.root,
            usage_leaf_count: usage.leaf_count(),
            usage_total: usage.total,
            credits_consumed: credits - consumed.credits,
            usage_cost_total: cost,
            usage_cost: proposal.allocation,
            ..proposal
        };
        Ok(paid)
    }

    /// The sponsor buys `tokens` of credits now.
    async fn sponsor_buys(&mut self, epoch: u64, tokens: u64) -> Result<(), String> {
        let config = self.config_state().await;
        let max_age = config.economics.price_max_age_secs;
        let at = self.now().await;
        if self.price_feed().await.usable_price(at, max_age).is_none() {
            for i in 0..self.oracles.len() {
                if config.oracles.contains(&self.oracles[i].pubkey()) {
                    let _ = self.submit_price(i, SPONSOR_PRICE).await;
                }
            }
        }
        let price = self
            .price_feed()
            .await
            .usable_price(at, max_age)
            .ok_or("no fresh price")?;
        let sponsor = self.sponsor.insecure_clone();
        let funded_already = self
            .ctx
            .banks_client
            .get_account(sponsor.pubkey())
            .await
            .expect("get_account")
            .is_some();
        if !funded_already {
            self.ctx.set_account(&sponsor.pubkey(), &funded().into());
        }
        let treasury = ata(&self.treasury.pubkey(), &self.mint);
        if self.token_balance(&treasury).await < tokens {
            return Err("the treasury cannot fund the sponsor".into());
        }
        self.give_tokens(&sponsor.pubkey(), tokens).await;
        let credits = backhaul_core::price::credits_for_tokens(tokens, price, DECIMALS)
            .map_err(|e| e.to_string())?;
        self.buy(&sponsor, tokens, credits, sponsor.pubkey())
            .await
            .map_err(|e| format!("the sponsor's purchase failed: {e}"))?;
        let bought = self.sponsored.entry((self.config, epoch)).or_default();
        bought.credits += credits;
        bought.tokens += tokens;
        Ok(())
    }

    /// What the deployment's rewards added to the mint's supply: the supply less the treasury's
    /// initial supply, plus what the sponsor burned for its credits.
    pub async fn supply_minted(&mut self) -> u64 {
        self.mint_supply().await + self.sponsor_bought().tokens - TREASURY_SUPPLY
    }

    /// `p` with its usage tree's consumption costing `cost_total` in all (tokens), after
    /// `previous_cost_total` in the last finalized epoch.
    pub fn with_cost(p: EpochProposal, previous_cost_total: u64, cost_total: u64) -> EpochProposal {
        EpochProposal {
            usage_cost_total: cost_total,
            usage_cost: cost_total - previous_cost_total,
            ..p
        }
    }

    /// Ends `epoch`, has oracles 0 and 1 vote for `proposal`, waits out the challenge period and
    /// finalizes. A proposal without paid usage is [`Env::sponsored`] (see [`Env::vote`]).
    pub async fn run_epoch(&mut self, epoch: u64, proposal: EpochProposal) {
        self.end_epoch(epoch).await;
        self.vote(0, epoch, proposal).await.expect("vote 0");
        self.vote(1, epoch, proposal).await.expect("vote 1");
        let at = self.epoch_state(epoch).await.finalizable_at;
        self.set_time(at).await;
        self.finalize(epoch).await.expect("finalize");
    }
}

/// What `credits` says its buyer had bought through the end of `epoch`
/// (`backhaul_core::cost::purchases_through` of its totals and checkpoints).
pub fn purchases_through(credits: &CreditAccount, epoch: u64) -> backhaul_core::cost::Purchases {
    let checkpoints: Vec<_> = credits
        .purchase_checkpoints()
        .iter()
        .map(|c| backhaul_core::cost::PurchaseCheckpoint {
            epoch: c.epoch,
            before: backhaul_core::cost::Purchases {
                credits: c.issued_before,
                tokens: c.tokens_before,
            },
        })
        .collect();
    let total = backhaul_core::cost::Purchases {
        credits: credits.issued,
        tokens: credits.tokens_burned,
    };
    backhaul_core::cost::purchases_through(total, &checkpoints, epoch)
}

/// The bank logs every instruction at debug level unless told otherwise; keep test output readable
/// (set `RUST_LOG` to see the logs).
fn quiet_bank_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_none() {
            std::env::set_var("RUST_LOG", "error");
        }
    });
}

fn funded() -> Account {
    Account {
        lamports: 100_000_000_000,
        data: vec![],
        owner: anchor_lang::system_program::ID,
        executable: false,
        rent_epoch: 0,
    }
}

/// An initialized token account of `mint` owned by `owner` holding `amount`.
pub fn token_account(mint: &Pubkey, owner: &Pubkey, amount: u64) -> Account {
    let state = spl_token_interface::state::Account {
        mint: *mint,
        owner: *owner,
        amount,
        state: spl_token_interface::state::AccountState::Initialized,
        ..Default::default()
    };
    let mut data = vec![0u8; spl_token_interface::state::Account::LEN];
    spl_token_interface::state::Account::pack(state, &mut data).expect("pack");
    token_program_account(data)
}

fn token_program_account(data: Vec<u8>) -> Account {
    Account {
        lamports: 10_000_000,
        data,
        owner: spl_token_interface::ID,
        executable: false,
        rent_epoch: 0,
    }
}

/// A mint account with the given authorities and supply.
pub fn mint_account(
    mint_authority: Option<Pubkey>,
    freeze_authority: Option<Pubkey>,
    supply: u64,
) -> Account {
    let mint = spl_token_interface::state::Mint {
        mint_authority: mint_authority.into(),
        supply,
        decimals: DECIMALS,
        is_initialized: true,
        freeze_authority: freeze_authority.into(),
    };
    let mut data = vec![0u8; spl_token_interface::state::Mint::LEN];
    spl_token_interface::state::Mint::pack(mint, &mut data).expect("pack mint");
    token_program_account(data)
}

async fn set_time(ctx: &mut ProgramTestContext, ts: i64) {
    let mut clock: Clock = ctx.banks_client.get_sysvar().await.expect("clock");
    clock.unix_timestamp = ts;
    ctx.set_sysvar(&clock);
}

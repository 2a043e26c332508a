//! What the oracle reads from the chain: the deployment's config, an epoch's sealed ledger and
//! buyers' credit accounts. [`RpcChain`] reads them with `solana-client`; [`MemoryChain`] holds
//! them in memory for tools and tests that run without a cluster.

use crate::clock;
use anchor_lang::AccountDeserialize;
use async_trait::async_trait;
use backhaul::state::{Config, CreditAccount, EpochLedger, EpochRecord};
use backhaul_close::{BuyerCredits, ChainInputs, CloseParams};
use backhaul_protocol::Key;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The inputs to `epoch`'s close: the budget and consensus parameters that apply to that epoch (a
/// change applied by governance takes effect only from an epoch that had not started).
pub fn chain_inputs(config: &Config, epoch: u64, ledger: Option<&EpochLedger>) -> ChainInputs {
    let params = config.params_for(epoch);
    let tokens_burned = ledger.map_or(0, |l| l.tokens_burned);
    ChainInputs {
        genesis_ts: config.genesis_ts,
        epoch_length_secs: config.epoch_length_secs,
        next_epoch: config.next_epoch,
        initial_per_epoch: params.emission.initial_per_epoch,
        decay_bps: params.emission.decay_bps,
        decay_period_epochs: params.emission.decay_period_epochs,
        floor_per_epoch: params.emission.floor_per_epoch,
        lifetime_cap: params.emission.lifetime_cap,
        scheduled_minted: config.scheduled_minted,
        burn_ema: config.burn_ema,
        net_emissions_cap: params.economics.net_emissions_cap,
        burn_smoothing_epochs: params.economics.burn_smoothing_epochs,
        usage_cap_bps: params.economics.usage_cap_bps,
        decimals: config.decimals,
        last_reward_total: config.last_reward_total,
        last_usage_total: config.last_usage_total,
        last_usage_cost_total: config.last_usage_cost_total,
        tokens_burned,
        credits_per_token: ledger.map_or(0, |l| l.credits_per_token),
        ledger_sealed: ledger.is_some_and(|l| l.sealed),
        burns_not_reemitted: config
            .burned_finalized
            .saturating_add(tokens_burned)
            .saturating_sub(config.total_reemitted),
        params: CloseParams {
            credits_per_gib: params.consensus.credits_per_gib,
            pair_cap_bytes: params.consensus.pair_cap_bytes,
            max_rate_bytes_per_sec: params.consensus.max_rate_bytes_per_sec,
        },
        grace_secs: params.consensus.grace_secs,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// `url` is cut to `scheme://host[:port]` and so is any URL quoted in `source`: the path or
    /// query of an RPC URL often holds an API key.
    #[error("RPC request to {url} failed: {}", crate::settings::redact_urls(&source.to_string()))]
    Rpc {
        url: String,
        #[source]
        source: Box<solana_client::client_error::ClientError>,
    },
    #[error("account {0} does not exist: is the deployment initialized, and are the program id and config right?")]
    Missing(Pubkey),
    #[error("account {0} does not hold the expected data: {1}")]
    Decode(Pubkey, String),
}

/// Read access to the deployment's on-chain state.
#[async_trait]
pub trait ChainView: Send + Sync {
    async fn config(&self) -> Result<Config, ChainError>;
    async fn ledger(&self, epoch: u64) -> Result<Option<EpochLedger>, ChainError>;
    async fn credits(&self, buyers: &[Key]) -> Result<HashMap<Key, BuyerCredits>, ChainError>;
    /// The chain's clock (unix seconds): epochs are defined by it, not by this machine's clock.
    async fn unix_timestamp(&self) -> Result<i64, ChainError>;

    /// An epoch's votes and status (none before its first vote; a view without votes has none).
    async fn epoch_record(&self, _epoch: u64) -> Result<Option<EpochRecord>, ChainError> {
        Ok(None)
    }

    /// The close's inputs for `epoch`.
    async fn inputs(&self, epoch: u64) -> Result<ChainInputs, ChainError> {
        let config = self.config().await?;
        let ledger = self.ledger(epoch).await?;
        Ok(chain_inputs(&config, epoch, ledger.as_ref()))
    }
}

/// Addresses of the deployment's accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub program_id: Pubkey,
    pub config: Pubkey,
}

impl Addresses {
    pub fn ledger(&self, epoch: u64) -> Pubkey {
        Pubkey::find_program_address(
            &[
                backhaul::constants::LEDGER_SEED,
                self.config.as_ref(),
                &epoch.to_le_bytes(),
            ],
            &self.program_id,
        )
        .0
    }

    pub fn epoch_record(&self, epoch: u64) -> Pubkey {
        Pubkey::find_program_address(
            &[
                backhaul::constants::EPOCH_SEED,
                self.config.as_ref(),
                &epoch.to_le_bytes(),
            ],
            &self.program_id,
        )
        .0
    }

    pub fn credits(&self, buyer: &Pubkey) -> Pubkey {
        Pubkey::find_program_address(
            &[
                backhaul::constants::CREDITS_SEED,
                self.config.as_ref(),
                buyer.as_ref(),
            ],
            &self.program_id,
        )
        .0
    }
}

fn decode<T: AccountDeserialize>(key: &Pubkey, data: &[u8]) -> Result<T, ChainError> {
    T::try_deserialize(&mut &data[..]).map_err(|e| ChainError::Decode(*key, e.to_string()))
}

/// Reads the chain through a JSON-RPC endpoint.
pub struct RpcChain {
    pub rpc: Arc<RpcClient>,
    pub addresses: Addresses,
}

impl RpcChain {
    /// The account at `key`, decoded, if it exists.
    async fn optional<T: AccountDeserialize>(&self, key: Pubkey) -> Result<Option<T>, ChainError> {
        let acc = self
            .rpc
            .get_account_with_commitment(&key, self.rpc.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?
            .value;
        acc.map(|a| decode(&key, &a.data)).transpose()
    }

    fn rpc_error(&self, e: solana_client::client_error::ClientError) -> ChainError {
        ChainError::Rpc {
            url: crate::settings::redact_url(&self.rpc.url()),
            source: Box::new(e),
        }
    }
}

#[async_trait]
impl ChainView for RpcChain {
    async fn config(&self) -> Result<Config, ChainError> {
        let key = self.addresses.config;
        let acc = self
            .rpc
            .get_account_with_commitment(&key, self.rpc.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?
            .value
            .ok_or(ChainError::Missing(key))?;
        decode(&key, &acc.data)
    }

    async fn ledger(&self, epoch: u64) -> Result<Option<EpochLedger>, ChainError> {
        self.optional(self.addresses.ledger(epoch)).await
    }

    async fn epoch_record(&self, epoch: u64) -> Result<Option<EpochRecord>, ChainError> {
        self.optional(self.addresses.epoch_record(epoch)).await
    }

    async fn credits(&self, buyers: &[Key]) -> Result<HashMap<Key, BuyerCredits>, ChainError> {
        let mut out = HashMap::new();
        for chunk in buyers.chunks(100) {
            let keys: Vec<Pubkey> = chunk
                .iter()
                .map(|b| self.addresses.credits(&Pubkey::new_from_array(*b)))
                .collect();
            let accounts = self
                .rpc
                .get_multiple_accounts(&keys)
                .await
                .map_err(|e| self.rpc_error(e))?;
            for ((buyer, key), acc) in chunk.iter().zip(&keys).zip(accounts) {
                if let Some(acc) = acc {
                    let c: CreditAccount = decode(key, &acc.data)?;
                    out.insert(*buyer, buyer_credits(&c));
                }
            }
        }
        Ok(out)
    }

    async fn unix_timestamp(&self) -> Result<i64, ChainError> {
        let key = solana_sdk::sysvar::clock::ID;
        let acc = self
            .rpc
            .get_account(&key)
            .await
            .map_err(|e| self.rpc_error(e))?;
        clock_unix_timestamp(&acc.data)
            .ok_or_else(|| ChainError::Decode(key, "the Clock sysvar is too short".into()))
    }
}

/// The Clock sysvar's `unix_timestamp` (bytes 32..40 of its data).
pub fn clock_unix_timestamp(data: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(data.get(32..40)?.try_into().ok()?))
}

/// What the close needs of a buyer's credit account: its totals and its purchase checkpoints.
pub fn buyer_credits(c: &CreditAccount) -> BuyerCredits {
    use backhaul_core::cost::{PurchaseCheckpoint, PurchaseCheckpoints, Purchases};
    let checkpoints: Vec<PurchaseCheckpoint> = c
        .purchase_checkpoints()
        .iter()
        .map(|p| PurchaseCheckpoint {
            epoch: p.epoch,
            before: Purchases {
                credits: p.issued_before,
                tokens: p.tokens_before,
            },
        })
        .collect();
    BuyerCredits {
        issued: c.issued,
        tokens_burned: c.tokens_burned,
        checkpoints: PurchaseCheckpoints::new(&checkpoints),
    }
}

/// The chain's state held in memory.
#[derive(Default)]
pub struct MemoryChain {
    pub state: RwLock<MemoryState>,
}

#[derive(Default, Clone)]
pub struct MemoryState {
    pub config: Option<Config>,
    pub ledgers: HashMap<u64, EpochLedger>,
    pub credits: HashMap<Key, BuyerCredits>,
    /// Epoch records by epoch (none: the view has no votes).
    pub records: HashMap<u64, EpochRecord>,
    /// The chain's clock; this machine's clock when unset.
    pub clock: Option<i64>,
}

impl MemoryChain {
    pub fn new(state: MemoryState) -> Self {
        MemoryChain {
            state: RwLock::new(state),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut MemoryState)) {
        if let Ok(mut s) = self.state.write() {
            f(&mut s);
        }
    }

    fn read(&self) -> MemoryState {
        self.state.read().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ChainView for MemoryChain {
    async fn config(&self) -> Result<Config, ChainError> {
        self.read()
            .config
            .ok_or(ChainError::Missing(Pubkey::default()))
    }

    async fn ledger(&self, epoch: u64) -> Result<Option<EpochLedger>, ChainError> {
        Ok(self.read().ledgers.get(&epoch).cloned())
    }

    async fn credits(&self, buyers: &[Key]) -> Result<HashMap<Key, BuyerCredits>, ChainError> {
        let state = self.read();
        Ok(buyers
            .iter()
            .filter_map(|b| state.credits.get(b).map(|c| (*b, *c)))
            .collect())
    }

    async fn unix_timestamp(&self) -> Result<i64, ChainError> {
        Ok(self.read().clock.unwrap_or_else(clock::now))
    }

    async fn epoch_record(&self, epoch: u64) -> Result<Option<EpochRecord>, ChainError> {
        Ok(self
            .state
            .read()
            .ok()
            .and_then(|s| s.records.get(&epoch).cloned()))
    }
}

/// Example accounts for tools, benchmarks and tests that run on a [`MemoryChain`].
pub mod examples {
    use backhaul::state::{
        Config, ConsensusParams, EconomicsParams, EmissionParams, EpochLedger, RateLimiter,
    };
    use solana_sdk::pubkey::Pubkey;

    /// A config as the chain would hold it (1,000 tokens per epoch, 6 decimals, rewards up to
    /// k = 1 times what buyers paid for the credits they consumed, 50,000 credits per GiB, a
    /// 100 GiB pair cap, 1 GiB/s at most, 300 s of grace): epoch `next_epoch` is the next to
    /// finalize.
    pub fn example_config(genesis_ts: i64, epoch_length_secs: u64, next_epoch: u64) -> Config {
        Config {
            version: backhaul::constants::ACCOUNT_VERSION,
            bump: 255,
            vault_bump: 255,
            admin: Pubkey::new_unique(),
            pending_admin: None,
            guardians: vec![Pubkey::new_unique()],
            mint: Pubkey::new_unique(),
            vault: Pubkey::new_unique(),
            price_feed: Pubkey::new_unique(),
            oracles: vec![Pubkey::new_unique()],
            threshold: 1,
            genesis_ts,
            epoch_length_secs,
            challenge_period_secs: 3_600,
            governance_delay_secs: epoch_length_secs.saturating_add(3_600),
            emission: EmissionParams {
                initial_per_epoch: 1_000_000_000,
                decay_bps: 5_000,
                decay_period_epochs: 30,
                floor_per_epoch: 10_000_000,
                lifetime_cap: 50_000_000_000,
            },
            rate_limiter: RateLimiter {
                window_secs: 86_400,
                capacity: 2_000_000_000,
                level: 0,
                last_ts: 0,
            },
            economics: EconomicsParams {
                price_max_age_secs: 3_600,
                price_max_change_bps: 2_000,
                net_emissions_cap: 100_000_000,
                burn_smoothing_epochs: 7,
                usage_cap_bps: 10_000,
            },
            decimals: 6,
            initial_supply: 0,
            paused_until: 0,
            pause_available_at: 0,
            next_epoch,
            next_change_id: 0,
            pending_params: None,
            last_reward_total: 0,
            last_reward_leaf_count: 0,
            total_minted: 0,
            scheduled_minted: 0,
            total_reemitted: 0,
            total_claimed: 0,
            burn_ema: 0,
            last_usage_total: 0,
            last_usage_leaf_count: 0,
            total_burned: 0,
            burned_finalized: 0,
            credits_issued: 0,
            credits_settled: 0,
            credits_unpaid: 0,
            last_usage_cost_total: 0,
            credits_issued_finalized: 0,
            oracle_bond_lamports: 0,
            consensus: ConsensusParams {
                credits_per_gib: 50_000,
                pair_cap_bytes: 100 << 30,
                max_rate_bytes_per_sec: 1 << 30,
                grace_secs: 300,
            },
        }
    }

    /// An epoch's ledger.
    pub fn example_ledger(
        config: Pubkey,
        epoch: u64,
        sealed: bool,
        burned: u64,
        price: u64,
    ) -> EpochLedger {
        EpochLedger {
            config,
            epoch,
            bump: 255,
            sealed,
            sealed_at: 0,
            tokens_burned: burned,
            credits_issued: 0,
            credits_settled: 0,
            credits_unpaid: 0,
            tokens_minted: 0,
            credits_per_token: price,
            price_posted_at: 0,
            burn_ema: 0,
            budget: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::examples::example_config;
    use super::*;
    use backhaul::state::{ConsensusParams, GovernanceChange, GovernanceStep, ParamsChange};

    const GENESIS: i64 = 1_800_000_000;
    const EPOCH: u64 = 86_400;

    /// The start of `epoch` plus `secs`.
    fn at(epoch: u64, secs: u64) -> i64 {
        GENESIS + (epoch * EPOCH + secs) as i64
    }

    #[test]
    fn inputs_carry_the_consensus_parameters_of_the_epoch() {
        let config = example_config(GENESIS, EPOCH, 0);
        let inputs = chain_inputs(&config, 0, None);
        assert_eq!(
            inputs.params,
            CloseParams {
                credits_per_gib: config.consensus.credits_per_gib,
                pair_cap_bytes: config.consensus.pair_cap_bytes,
                max_rate_bytes_per_sec: config.consensus.max_rate_bytes_per_sec,
            }
        );
        assert_eq!(inputs.grace_secs, config.consensus.grace_secs);
    }

    #[test]
    fn a_change_queued_during_an_epoch_leaves_that_epochs_inputs_alone() {
        // Epoch 3 runs (epochs 0 to 2 are finalized); the admin queues new consensus parameters.
        let mut config = example_config(GENESIS, EPOCH, 3);
        let old = config.consensus;
        let new = ConsensusParams {
            credits_per_gib: old.credits_per_gib * 2,
            pair_cap_bytes: old.pair_cap_bytes / 2,
            max_rate_bytes_per_sec: old.max_rate_bytes_per_sec / 2,
            grace_secs: old.grace_secs + 60,
        };
        let change = GovernanceChange::Params(ParamsChange {
            consensus: Some(new),
            ..ParamsChange::default()
        });
        let queued_at = at(3, 1_000);
        let before: Vec<ChainInputs> = (3..=5).map(|e| chain_inputs(&config, e, None)).collect();
        let mut preview = config.clone();
        preview
            .apply_governance(&change, queued_at, GovernanceStep::Queue)
            .expect("the change is acceptable");
        assert_eq!(preview.pending_params, None, "queueing changes nothing");

        // Applied once the delay has passed, in epoch 4: epochs 3 and 4 had started, so only
        // epoch 5 on reads the new values.
        let applied_at = queued_at + config.governance_delay_secs as i64;
        assert_eq!(config.clock_epoch(applied_at), 4);
        config
            .apply_governance(&change, applied_at, GovernanceStep::Apply)
            .expect("the change applies");
        assert_eq!(config.pending_params.map(|p| p.from_epoch), Some(5));
        for e in [3, 4] {
            let inputs = chain_inputs(&config, e, None);
            assert_eq!(inputs, before[(e - 3) as usize], "epoch {e}");
            assert_eq!(inputs.params.credits_per_gib, old.credits_per_gib);
            assert_eq!(inputs.grace_secs, old.grace_secs);
        }
        let later = chain_inputs(&config, 5, None);
        assert_eq!(
            later.params,
            CloseParams {
                credits_per_gib: new.credits_per_gib,
                pair_cap_bytes: new.pair_cap_bytes,
                max_rate_bytes_per_sec: new.max_rate_bytes_per_sec,
            }
        );
        assert_eq!(later.grace_secs, new.grace_secs);
        assert_eq!(
            ChainInputs {
                params: before[2].params,
                grace_secs: before[2].grace_secs,
                ..later
            },
            before[2],
            "nothing else of epoch 5's inputs changed"
        );
    }
}

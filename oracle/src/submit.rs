//! The submitter: gets each epoch's vote on-chain exactly once, seals ledgers and finalizes epochs.
//!
//! Every transaction is journaled (its bytes, signature and last valid block height) and committed
//! before it is sent. On start, and at every tick, pending entries are reconciled with the chain
//! first: a signature the chain knows is settled; a transaction whose blockhash is still valid is
//! rebroadcast byte for byte (the chain drops duplicates by signature); one whose blockhash has
//! expired without landing can never land and may be replaced. A vote is only built when the
//! chain shows none from this oracle in the epoch's current round and no journaled vote for that
//! round is pending, so a crash at any point leads to neither a lost nor a double vote (and the
//! program refuses double votes anyway).
//!
//! Each transaction is simulated before it is journaled, and asks for the compute units its
//! simulation used plus the margin of [`backhaul_sdk::compute`] (or the fixed
//! `compute_unit_limit` of the settings), so that its priority fee pays for the units it needs.
//! A simulation that fails sends nothing. Refusals that only mean another oracle got there first
//! (a ledger already sealed, an epoch already finalized, a vote already on-chain) are [`Race`]s:
//! expected with several oracles, logged at debug level and counted in
//! `backhaul_submit_raced_total`, never warned about. A price is never refused for what other
//! oracles did: the program bounds it only by this oracle's own previous submission.
//!
//! Prices are posted on a schedule and journaled like the rest: time (the chain's clock) is cut
//! into slots of `price_interval_secs`, and a price transaction is journaled under (the current
//! epoch, `price`, the slot's index). At most one price transaction is built per slot, whatever
//! happens to it (refused, failed in transport, crashed after journaling, expired), and none
//! while an earlier one is pending: a pending one is rebroadcast or settled by the reconcile,
//! never duplicated. The next slot may post again.

use crate::clock::{self, ChainTime};
use crate::close::Closer;
use crate::db::{i64_of, DbError};
use anchor_lang::AccountDeserialize;
use backhaul::error::BackhaulError;
use backhaul::state::{Config, EpochLedger, EpochProposal, EpochRecord, EpochStatus};
use backhaul_core::merkle::proposal_digest;
use backhaul_core::price::{submission_band, PriceBand, TimedPrice};
use backhaul_protocol::dataset::{hash_from_hex, Dataset};
use backhaul_sdk::{compute, ix, Deployment};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_config::{RpcSendTransactionConfig, RpcSimulateTransactionConfig};
use solana_commitment_config::CommitmentConfig;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};
use sqlx::{AnyPool, Row};
use std::str::FromStr;
use std::sync::Arc;

/// What a journaled transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Seal,
    Vote,
    Finalize,
    /// A price submission; its round is the schedule slot (see [`price_slot`]).
    Price,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Seal => "seal",
            Kind::Vote => "vote",
            Kind::Finalize => "finalize",
            Kind::Price => "price",
        }
    }
}

/// A journal entry's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub epoch: u64,
    pub kind: String,
    pub round: u64,
    pub digest: Vec<u8>,
    pub signature: String,
    pub last_valid_block_height: u64,
    pub tx: Vec<u8>,
    pub status: String,
    pub error: String,
    pub attempts: u64,
    /// When the entry last changed (this machine's clock, unix seconds).
    pub updated_at: i64,
}

pub const PENDING: &str = "pending";
pub const CONFIRMED: &str = "confirmed";
pub const FAILED: &str = "failed";
pub const EXPIRED: &str = "expired";

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("RPC request failed: {0}; the endpoint may be down or slow, retrying with backoff")]
    Rpc(#[from] Box<solana_client::client_error::ClientError>),
    #[error("account {0} does not decode: {1}")]
    Decode(Pubkey, String),
    #[error("the journal holds an unreadable entry: {0}")]
    Journal(String),
    #[error("crash injected at {0:?}")]
    Crash(Crash),
}

/// A point where crash tests stop the submitter, as a kill would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// After the journal commit, before sending.
    AfterJournal(Kind),
    /// After sending, before the next reconcile.
    AfterSend(Kind),
}

impl From<solana_client::client_error::ClientError> for SubmitError {
    fn from(e: solana_client::client_error::ClientError) -> Self {
        SubmitError::Rpc(Box::new(e))
    }
}

/// A refusal by the program that only means the work is already done, or was overtaken: several
/// oracles race to seal, vote, finalize and post prices, and all but the first are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Race {
    /// `LedgerSealed`: another oracle sealed the epoch's ledger first.
    AlreadySealed,
    /// `AlreadyFinalized`: another oracle finalized the epoch first.
    AlreadyFinalized,
    /// `EpochOutOfOrder`: the epoch was finalized meanwhile; the chain expects the next one.
    EpochPassed,
    /// `DoubleVote`: this oracle's vote for the round is already on-chain.
    AlreadyVoted,
}

impl Race {
    /// The program's errors that are races.
    /// A price is never refused for what other oracles did: it is bounded only by this
    /// oracle's own previous submission, so `PriceJumpTooLarge` is no race.
    const ERRORS: [(BackhaulError, Race); 4] = [
        (BackhaulError::LedgerSealed, Race::AlreadySealed),
        (BackhaulError::AlreadyFinalized, Race::AlreadyFinalized),
        (BackhaulError::EpochOutOfOrder, Race::EpochPassed),
        (BackhaulError::DoubleVote, Race::AlreadyVoted),
    ];

    /// The race `err` shows, if it is one: one of the program's race errors (by its custom error
    /// code) raised by an instruction of the Backhaul program. `programs` are the program ids of
    /// the transaction's instructions, in order.
    pub fn of(err: &TransactionError, programs: &[Pubkey]) -> Option<Race> {
        let TransactionError::InstructionError(index, InstructionError::Custom(code)) = err else {
            return None;
        };
        if programs.get(usize::from(*index)) != Some(&backhaul::ID) {
            return None;
        }
        Race::ERRORS
            .iter()
            .find(|(e, _)| u32::from(*e) == *code)
            .map(|(_, race)| *race)
    }

    /// The program's name for the error.
    pub fn error_name(self) -> String {
        Race::ERRORS
            .iter()
            .find(|(_, race)| *race == self)
            .map(|(e, _)| e.name())
            .unwrap_or_default()
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Race::AlreadySealed => "already_sealed",
            Race::AlreadyFinalized => "already_finalized",
            Race::EpochPassed => "epoch_passed",
            Race::AlreadyVoted => "already_voted",
        }
    }

    /// What happened, in a sentence about `epoch` (the epoch the transaction was for; a price
    /// belongs to no epoch).
    pub fn sentence(self, epoch: u64) -> String {
        match self {
            Race::AlreadySealed => {
                format!("epoch {epoch}'s ledger was already sealed by another oracle")
            }
            Race::AlreadyFinalized => format!("epoch {epoch} was already finalized by another oracle"),
            Race::EpochPassed => format!(
                "epoch {epoch} was already finalized by another oracle; the chain expects the next epoch"
            ),
            Race::AlreadyVoted => {
                format!("this oracle's vote on epoch {epoch} is already on-chain for this round")
            }
        }
    }
}

/// The program ids of `tx`'s instructions, in order.
pub fn program_ids(tx: &Transaction) -> Vec<Pubkey> {
    tx.message
        .instructions
        .iter()
        .map(|ix| {
            tx.message
                .account_keys
                .get(usize::from(ix.program_id_index))
                .copied()
                .unwrap_or_default()
        })
        .collect()
}

/// A transaction that a simulation (or the endpoint's preflight) refused: nothing was sent.
struct Refusal {
    /// The transaction that was refused.
    tx: Transaction,
    /// The transaction's error, when the endpoint gave one.
    error: Option<TransactionError>,
    /// The error in words, with the program's logs.
    detail: String,
}

impl Refusal {
    fn race(&self) -> Option<Race> {
        self.error
            .as_ref()
            .and_then(|e| Race::of(e, &program_ids(&self.tx)))
    }
}

/// Settings of the submitter.
#[derive(Clone, Copy, Debug)]
pub struct SubmitParams {
    /// A fixed compute-unit limit for every transaction; `None`: each transaction's simulated
    /// units plus the margin of [`backhaul_sdk::compute`].
    pub compute_unit_limit: Option<u32>,
    pub max_priority_fee_micro_lamports: u64,
    /// After this many failed attempts at one action, wait between attempts: twice as long
    /// after each further failure, up to [`MAX_BACKOFF_SECS`]. It never gives up for good: a
    /// network that cannot finalize is as bad as one that pays the wrong operator.
    pub backoff_after: u64,
    /// The price this oracle posts (credits per whole token), when it posts one.
    pub price: Option<u64>,
    /// The length of a price slot, seconds: at most one price transaction per slot. `None`: half
    /// of the deployment's `price_max_age_secs` (see [`price_interval`]).
    pub price_interval_secs: Option<u64>,
}

pub struct Submitter {
    pub rpc: Arc<RpcClient>,
    pub keypair: Arc<Keypair>,
    pub deployment: Deployment,
    pub pool: AnyPool,
    pub closer: Arc<Closer>,
    pub time: ChainTime,
    pub params: SubmitParams,
    /// Crash tests only: stop at this point (the error ends the tick as a kill would).
    pub crash: Option<Crash>,
}

/// The longest wait between two attempts at one action.
pub const MAX_BACKOFF_SECS: i64 = 600;

/// Seconds to wait after `attempts` failed attempts before the next one.
pub fn retry_wait_secs(attempts: u64, backoff_after: u64) -> i64 {
    let over = attempts.saturating_sub(backoff_after);
    if over == 0 {
        return 0;
    }
    1i64.checked_shl(u32::try_from(over.min(30)).unwrap_or(30))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// The proposal an epoch's dataset commits to.
pub fn proposal_of(d: &Dataset) -> Option<EpochProposal> {
    Some(EpochProposal {
        reward_root: hash_from_hex(&d.rewards.root)?,
        reward_leaf_count: d.rewards.leaf_count,
        reward_total: d.rewards.total,
        allocation: d.allocation,
        dataset_hash: backhaul_core::merkle::sha256v(&[&d.to_bytes()]),
        usage_root: hash_from_hex(&d.usage.root)?,
        usage_leaf_count: d.usage.leaf_count,
        usage_total: d.usage.total,
        credits_consumed: d.usage.credits_consumed,
        usage_cost_total: d.usage.cost_total,
        usage_cost: d.usage.usage_cost,
    })
}

impl Submitter {
    async fn account<T: AccountDeserialize>(&self, key: &Pubkey) -> Result<Option<T>, SubmitError> {
        let acc = self
            .rpc
            .get_account_with_commitment(key, CommitmentConfig::confirmed())
            .await?
            .value;
        acc.map(|a| {
            T::try_deserialize(&mut &a.data[..])
                .map_err(|e| SubmitError::Decode(*key, e.to_string()))
        })
        .transpose()
    }

    /// Reconciles the journal, then does whatever the next epoch needs. Returns what was sent.
    pub async fn tick(&self) -> Result<Vec<(Kind, u64)>, SubmitError> {
        self.reconcile().await?;
        let mut sent = Vec::new();
        let config: Config = self
            .account(&self.deployment.config)
            .await?
            .ok_or_else(|| {
                SubmitError::Decode(
                    self.deployment.config,
                    "the config account does not exist".into(),
                )
            })?;
        // The price never holds up the epoch's work: whatever happens to it, the tick goes on
        // (only an injected crash ends it, as a kill would).
        match self.post_price(&config).await {
            Ok(Some(epoch)) => sent.push((Kind::Price, epoch)),
            Ok(None) => {}
            Err(e @ SubmitError::Crash(_)) => return Err(e),
            Err(e) => {
                let error = crate::settings::redact_urls(&e.to_string());
                tracing::warn!(%error, "posting the price failed; will retry");
            }
        }
        let epoch = config.next_epoch;
        let now = self.time.now();
        if now < self.closer.clock.end(epoch) {
            return Ok(sent);
        }
        // 1. Seal the ended epoch's ledger, so that every oracle closes it on the same inputs.
        let ledger: Option<EpochLedger> = self.account(&self.deployment.ledger(epoch)).await?;
        if !ledger.as_ref().is_some_and(|l| l.sealed) {
            let ixs = vec![ix::seal_epoch(
                &self.deployment,
                &self.keypair.pubkey(),
                epoch,
            )];
            if self.ensure(Kind::Seal, epoch, 0, &[], ixs).await? {
                sent.push((Kind::Seal, epoch));
            }
            return Ok(sent);
        }
        // 2. Vote once the epoch is closed here. A round that ended without quorum (a split
        // vote) or was vetoed is followed by a new one, and before each vote this oracle syncs
        // the epoch's input with its peers and closes again if it changed.
        if self
            .closer
            .latest()
            .is_none_or(|c| c.dataset.epoch != epoch)
        {
            return Ok(sent);
        }
        let record: Option<EpochRecord> =
            self.account(&self.deployment.epoch_record(epoch)).await?;
        let me = self.keypair.pubkey();
        let challenge = i64::try_from(config.challenge_period_secs).unwrap_or(i64::MAX);
        let (round, voted, status) = match &record {
            Some(r) => {
                let expired = r.status == EpochStatus::Voting
                    && !r.votes.is_empty()
                    && now >= r.round_started_at.saturating_add(challenge);
                let next_round = r.status == EpochStatus::Vetoed || expired;
                let round = u64::from(r.round) + u64::from(next_round);
                let voted = !next_round && r.votes.iter().any(|v| v.oracle == me);
                (round, voted, Some(r.status))
            }
            None => (0, false, None),
        };
        let wants_vote = status != Some(EpochStatus::Finalized) && !voted;
        if wants_vote && round > 0 {
            if let Err(e) = self.closer.refresh(epoch, now).await {
                tracing::warn!(epoch, error = %e, "syncing the epoch's input with peers failed; voting on the current close");
            }
        }
        let Some(closed) = self.closer.latest().filter(|c| c.dataset.epoch == epoch) else {
            return Ok(sent);
        };
        let Some(proposal) = proposal_of(&closed.dataset) else {
            return Err(SubmitError::Journal(format!(
                "epoch {epoch}'s dataset has malformed roots"
            )));
        };
        let digest = proposal_digest(
            &self.deployment.config.to_bytes(),
            epoch,
            &borsh::to_vec(&proposal).unwrap_or_default(),
        );
        if let Some(r) = &record {
            if r.status == EpochStatus::Proposed && r.proposal_digest != digest {
                tracing::warn!(
                    epoch,
                    "the quorum's proposal differs from this oracle's: check the datasets"
                );
                metrics::counter!("backhaul_submit_dissent_total").increment(1);
            }
            for v in r
                .votes
                .iter()
                .filter(|v| v.oracle != me && v.digest != digest)
            {
                // Expected while oracles still differ on the epoch's input; the next round
                // syncs them.
                tracing::info!(epoch, oracle = %v.oracle, "another oracle voted for a different proposal");
                metrics::counter!("backhaul_submit_dissent_total").increment(1);
            }
        }
        // A guardian vetoed this very proposal: the program refuses it for one challenge period,
        // so trying before then would only spend attempts. The oracle votes it again after.
        if let Some(r) = record.as_ref().filter(|r| r.is_banned(&digest, now)) {
            tracing::info!(
                epoch,
                banned_until = r.banned_until,
                "this oracle's proposal was vetoed; voting it again once the ban ends"
            );
            return Ok(sent);
        }
        if wants_vote {
            let ixs = vec![ix::propose_root(&self.deployment, &me, epoch, proposal)];
            if self.ensure(Kind::Vote, epoch, round, &digest, ixs).await? {
                sent.push((Kind::Vote, epoch));
            }
        }
        // 3. Finalize once the challenge period has passed (anyone may).
        if let Some(r) = &record {
            if r.status == EpochStatus::Proposed && now >= r.finalizable_at {
                let ixs = vec![ix::finalize(&self.deployment, epoch)];
                if self
                    .ensure(Kind::Finalize, epoch, u64::from(r.round), &[], ixs)
                    .await?
                {
                    sent.push((Kind::Finalize, epoch));
                }
            }
        }
        Ok(sent)
    }

    /// Sends `ixs` as `kind` for (epoch, round) unless a journaled attempt is pending or done.
    /// Returns whether a transaction was sent.
    async fn ensure(
        &self,
        kind: Kind,
        epoch: u64,
        round: u64,
        digest: &[u8],
        ixs: Vec<Instruction>,
    ) -> Result<bool, SubmitError> {
        let existing = self.entry(epoch, kind, round).await?;
        if let Some(e) = &existing {
            if e.status == PENDING || e.status == CONFIRMED {
                return Ok(false);
            }
            let wait = retry_wait_secs(e.attempts, self.params.backoff_after);
            if wait > 0 {
                metrics::gauge!("backhaul_submit_failed_attempts", "kind" => kind.as_str())
                    .set(e.attempts as f64);
                if clock::now() < e.updated_at.saturating_add(wait) {
                    return Ok(false);
                }
                tracing::warn!(epoch, kind = kind.as_str(), attempts = e.attempts, error = %crate::settings::redact_urls(&e.error), retry_every_secs = wait, "this action keeps failing; retrying with backoff (see the error)");
                metrics::counter!("backhaul_submit_backoff_retries_total", "kind" => kind.as_str())
                    .increment(1);
            }
        }
        let attempts = existing.map_or(0, |e| e.attempts) + 1;
        let accounts = [self.deployment.config, self.deployment.epoch_record(epoch)];
        match self
            .attempt(kind, epoch, round, digest, ixs, attempts, &accounts)
            .await?
        {
            Attempt::Sent => Ok(true),
            Attempt::Refused => Ok(false),
            Attempt::Unsent(e) => Err(SubmitError::Rpc(e)),
        }
    }

    /// Builds, journals and sends one attempt at `kind` for (epoch, round), without waiting for
    /// it to land: the reconcile of a later tick settles it.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        kind: Kind,
        epoch: u64,
        round: u64,
        digest: &[u8],
        ixs: Vec<Instruction>,
        attempts: u64,
        fee_accounts: &[Pubkey],
    ) -> Result<Attempt, SubmitError> {
        let fee = self.priority_fee(fee_accounts).await;
        let price = (fee > 0).then_some(fee);
        let (blockhash, last_valid) = self
            .rpc
            .get_latest_blockhash_with_commitment(CommitmentConfig::confirmed())
            .await?;
        let limit = match self.compute_unit_limit(&ixs, blockhash).await? {
            Ok(limit) => limit,
            Err(refusal) => {
                // The simulation failed: nothing was sent, and the attempt is journaled as such.
                self.refused(kind, epoch, round, digest, last_valid, attempts, &refusal)
                    .await?;
                return Ok(Attempt::Refused);
            }
        };
        let tx = self.sign(&compute::with_budget(limit, price, &ixs), blockhash);
        let bytes = bincode_tx(&tx);
        let signature = tx.signatures[0];
        // Journal first: after this commit a crash can only lead to rebroadcasting this exact tx.
        self.journal(
            epoch, kind, round, digest, &signature, last_valid, &bytes, PENDING, "", attempts,
        )
        .await?;
        if self.crash == Some(Crash::AfterJournal(kind)) {
            return Err(SubmitError::Crash(Crash::AfterJournal(kind)));
        }
        tracing::info!(epoch, kind = kind.as_str(), round, %signature, fee, compute_unit_limit = limit, "sending");
        metrics::counter!("backhaul_submit_sent_total", "kind" => kind.as_str()).increment(1);
        let config = RpcSendTransactionConfig {
            skip_preflight: false,
            ..Default::default()
        };
        if let Err(e) = self.rpc.send_transaction_with_config(&tx, config).await {
            if is_transport(&e) {
                // The endpoint is down or slow: the transaction may or may not have reached the
                // chain. The entry stays pending; reconciling finds it, sends the same bytes
                // again, or retires it once its blockhash has expired. Never a second one.
                tracing::warn!(epoch, kind = kind.as_str(), round, %signature, error = %crate::settings::redact_urls(&e.to_string()), "sending failed in transport; the journaled transaction stays pending");
                return Ok(Attempt::Unsent(Box::new(e)));
            }
            // Preflight refused it (the chain changed since the simulation): it never reached
            // the chain, so it can be retired now.
            let refusal = Refusal {
                error: e.get_transaction_error(),
                detail: e.to_string(),
                tx,
            };
            self.refused(kind, epoch, round, digest, last_valid, attempts, &refusal)
                .await?;
            return Ok(Attempt::Refused);
        }
        if self.crash == Some(Crash::AfterSend(kind)) {
            return Err(SubmitError::Crash(Crash::AfterSend(kind)));
        }
        Ok(Attempt::Sent)
    }

    /// Posts this oracle's target price on the schedule, as far as the band of its own previous
    /// submission lets it (the program's only bound on it). Time is cut into slots of
    /// [`price_interval`] seconds; in a slot with no price entry in the journal, and while no
    /// earlier one is pending, a post is due when this oracle's on-chain submission is missing or
    /// older than the interval, when the stepped target ([`next_submission`]) differs from it,
    /// or when the oracle set changed since the price was posted (a submission then lets the new
    /// set's quorum post). The transaction is journaled under (the current epoch, `price`, the
    /// slot) before it is sent and is never waited for: the reconcile settles it, rebroadcasts
    /// it, or finds it expired, and the next slot may post again. Returns the epoch of the key
    /// when a transaction was sent.
    async fn post_price(&self, config: &Config) -> Result<Option<u64>, SubmitError> {
        let Some(target) = self.params.price else {
            return Ok(None);
        };
        let economics = &config.economics;
        let interval = price_interval(
            self.params.price_interval_secs,
            economics.price_max_age_secs,
        );
        let now = self.time.now();
        let slot = price_slot(now, interval);
        // One transaction per slot, whatever became of it; none while an earlier one is pending.
        if let Some(e) = self
            .price_entries(slot)
            .await?
            .into_iter()
            .find(|e| e.round == slot || e.status == PENDING)
        {
            tracing::trace!(slot, entry_slot = e.round, status = %e.status, "the price slot is taken");
            return Ok(None);
        }
        let feed: Option<backhaul::state::PriceFeed> =
            self.account(&self.deployment.price_feed()).await?;
        let Some(feed) = feed else {
            return Ok(None);
        };
        let me = self.keypair.pubkey();
        let mine = feed.submission_of(&me);
        let price = next_submission(
            mine,
            target,
            now,
            economics.price_max_age_secs,
            economics.price_max_change_bps,
        );
        let every = i64::try_from(interval).unwrap_or(i64::MAX);
        let due = feed.oracle_set_changed
            || mine
                .is_none_or(|m| now.saturating_sub(m.at) >= every || m.credits_per_token != price);
        if !due {
            return Ok(None);
        }
        let epoch = self.closer.clock.at(now).unwrap_or(0);
        let ixs = vec![ix::submit_price(&self.deployment, &me, price)];
        let accounts = [self.deployment.config, self.deployment.price_feed()];
        tracing::debug!(price, target, slot, interval, "posting the price");
        match self
            .attempt(
                Kind::Price,
                epoch,
                slot,
                &price.to_le_bytes(),
                ixs,
                1,
                &accounts,
            )
            .await?
        {
            Attempt::Sent => Ok(Some(epoch)),
            // Refused (logged), or failed in transport and pending (logged): either way this
            // slot's transaction exists; the next slot may post again.
            Attempt::Refused | Attempt::Unsent(_) => Ok(None),
        }
    }

    /// The price entries of `slot` and every pending price entry.
    async fn price_entries(&self, slot: u64) -> Result<Vec<Entry>, SubmitError> {
        let rows = sqlx::query(
            "SELECT * FROM submissions WHERE kind = $1 AND (round = $2 OR status = $3) ORDER BY epoch, round",
        )
        .bind(Kind::Price.as_str())
        .bind(i64_of(slot)?)
        .bind(PENDING)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_of).collect()
    }

    /// Signs `ixs` with this oracle's key as the fee payer.
    fn sign(&self, ixs: &[Instruction], blockhash: Hash) -> Transaction {
        Transaction::new_signed_with_payer(
            ixs,
            Some(&self.keypair.pubkey()),
            &[self.keypair.as_ref()],
            blockhash,
        )
    }

    /// The compute-unit limit for `ixs`: the fixed one of the settings, or what a simulation of
    /// them used plus the margin. `Err` when the simulation fails: nothing may be sent then.
    async fn compute_unit_limit(
        &self,
        ixs: &[Instruction],
        blockhash: Hash,
    ) -> Result<Result<u32, Refusal>, SubmitError> {
        if let Some(limit) = self.params.compute_unit_limit {
            return Ok(Ok(limit));
        }
        let probe = self.sign(&compute::simulation_budget(ixs), blockhash);
        let config = RpcSimulateTransactionConfig {
            sig_verify: false,
            replace_recent_blockhash: true,
            commitment: Some(CommitmentConfig::confirmed()),
            ..RpcSimulateTransactionConfig::default()
        };
        let sim = match self
            .rpc
            .simulate_transaction_with_config(&probe, config)
            .await
        {
            Ok(response) => response.value,
            Err(e) if is_transport(&e) => return Err(e.into()),
            Err(e) => {
                return Ok(Err(Refusal {
                    error: e.get_transaction_error(),
                    detail: e.to_string(),
                    tx: probe,
                }))
            }
        };
        if let Some(err) = sim.err {
            let error = TransactionError::from(err);
            let logs = sim.logs.unwrap_or_default();
            let detail = format!(
                "Transaction simulation failed: {error}; {} log messages:\n  {}",
                logs.len(),
                logs.join("\n  ")
            );
            return Ok(Err(Refusal {
                error: Some(error),
                detail,
                tx: probe,
            }));
        }
        Ok(Ok(match sim.units_consumed {
            Some(units) => compute::limit_from_simulation(units),
            None => {
                tracing::warn!(
                    "the RPC endpoint did not say how many compute units the simulation used; \
                     asking for the most a transaction may use (set compute_unit_limit to fix one)"
                );
                compute::MAX_COMPUTE_UNIT_LIMIT
            }
        }))
    }

    /// Records a refused attempt (nothing reached the chain): a race at debug level, anything
    /// else as a warning.
    #[allow(clippy::too_many_arguments)]
    async fn refused(
        &self,
        kind: Kind,
        epoch: u64,
        round: u64,
        digest: &[u8],
        last_valid: u64,
        attempts: u64,
        refusal: &Refusal,
    ) -> Result<(), SubmitError> {
        let note = if kind == Kind::Price {
            let price = digest
                .try_into()
                .map(u64::from_le_bytes)
                .unwrap_or_default();
            price_refused(price, round, refusal)
        } else {
            match refusal.race() {
                Some(race) => {
                    let sentence = race.sentence(epoch);
                    tracing::debug!(epoch, kind = kind.as_str(), round, error = %race.error_name(), "{sentence}");
                    metrics::counter!("backhaul_submit_raced_total", "kind" => kind.as_str(), "race" => race.as_str())
                        .increment(1);
                    sentence
                }
                None => {
                    tracing::warn!(epoch, kind = kind.as_str(), error = %refusal.detail, "the transaction was refused before sending");
                    metrics::counter!("backhaul_submit_failed_total", "kind" => kind.as_str())
                        .increment(1);
                    refusal.detail.clone()
                }
            }
        };
        let tx = &refusal.tx;
        self.journal(
            epoch,
            kind,
            round,
            digest,
            &tx.signatures.first().copied().unwrap_or_default(),
            last_valid,
            &bincode_tx(tx),
            FAILED,
            &note,
            attempts,
        )
        .await
    }

    /// The priority fee: the 75th percentile of recent fees on these accounts, capped.
    async fn priority_fee(&self, accounts: &[Pubkey]) -> u64 {
        let Ok(mut fees) = self.rpc.get_recent_prioritization_fees(accounts).await else {
            return 0;
        };
        fees.sort_unstable_by_key(|f| f.prioritization_fee);
        let pick = fees
            .get(fees.len().saturating_mul(3) / 4)
            .map_or(0, |f| f.prioritization_fee);
        pick.min(self.params.max_priority_fee_micro_lamports)
    }

    /// Settles pending journal entries with what the chain says.
    pub async fn reconcile(&self) -> Result<(), SubmitError> {
        let pending = self.pending().await?;
        if pending.is_empty() {
            return Ok(());
        }
        let signatures: Vec<Signature> = pending
            .iter()
            .map(|e| {
                Signature::from_str(&e.signature)
                    .map_err(|_| SubmitError::Journal(e.signature.clone()))
            })
            .collect::<Result<_, _>>()?;
        let statuses = self
            .rpc
            .get_signature_statuses_with_history(&signatures)
            .await?
            .value;
        let height = self.rpc.get_block_height().await?;
        for (e, status) in pending.iter().zip(statuses) {
            match status {
                Some(s) if s.satisfies_commitment(CommitmentConfig::confirmed()) => {
                    let (state, err) = match &s.err {
                        None => (CONFIRMED, String::new()),
                        Some(err) => (FAILED, err.to_string()),
                    };
                    tracing::info!(epoch = e.epoch, kind = %e.kind, signature = %e.signature, state, %err, "settled");
                    self.set_status(e, state, &err).await?;
                }
                Some(_) => {} // seen, not yet confirmed
                None if height > e.last_valid_block_height => {
                    tracing::info!(epoch = e.epoch, kind = %e.kind, signature = %e.signature, "expired without landing; will rebuild");
                    self.set_status(e, EXPIRED, "").await?;
                }
                None => {
                    // Still valid and unseen: send the same bytes again.
                    if let Ok(tx) = bincode::deserialize::<Transaction>(&e.tx) {
                        let config = RpcSendTransactionConfig {
                            skip_preflight: true,
                            ..Default::default()
                        };
                        if let Err(err) = self.rpc.send_transaction_with_config(&tx, config).await {
                            tracing::debug!(error = %err, "rebroadcast failed");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Records a journal entry's new state.
    async fn set_status(&self, e: &Entry, status: &str, error: &str) -> Result<(), SubmitError> {
        sqlx::query(
            "UPDATE submissions SET status = $1, error = $2, updated_at = $3 WHERE epoch = $4 AND kind = $5 AND round = $6",
        )
        .bind(status)
        .bind(error)
        .bind(clock::now())
        .bind(i64_of(e.epoch)?)
        .bind(e.kind.as_str())
        .bind(i64_of(e.round)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn entry(
        &self,
        epoch: u64,
        kind: Kind,
        round: u64,
    ) -> Result<Option<Entry>, SubmitError> {
        let row =
            sqlx::query("SELECT * FROM submissions WHERE epoch = $1 AND kind = $2 AND round = $3")
                .bind(i64_of(epoch)?)
                .bind(kind.as_str())
                .bind(i64_of(round)?)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| entry_of(&r)).transpose()
    }

    /// Every journal entry, oldest epoch first.
    pub async fn entries(&self) -> Result<Vec<Entry>, SubmitError> {
        let rows = sqlx::query("SELECT * FROM submissions ORDER BY epoch, kind, round")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_of).collect()
    }

    async fn pending(&self) -> Result<Vec<Entry>, SubmitError> {
        Ok(self
            .entries()
            .await?
            .into_iter()
            .filter(|e| e.status == PENDING)
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    async fn journal(
        &self,
        epoch: u64,
        kind: Kind,
        round: u64,
        digest: &[u8],
        signature: &Signature,
        last_valid: u64,
        tx: &[u8],
        status: &str,
        error: &str,
        attempts: u64,
    ) -> Result<(), SubmitError> {
        sqlx::query(
            "INSERT INTO submissions (epoch, kind, round, digest, signature, last_valid_block_height, tx, status, error, attempts, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (epoch, kind, round) DO UPDATE SET digest = excluded.digest, signature = excluded.signature, \
             last_valid_block_height = excluded.last_valid_block_height, tx = excluded.tx, status = excluded.status, \
             error = excluded.error, attempts = excluded.attempts, updated_at = excluded.updated_at",
        )
        .bind(i64_of(epoch)?)
        .bind(kind.as_str())
        .bind(i64_of(round)?)
        .bind(digest.to_vec())
        .bind(signature.to_string())
        .bind(i64_of(last_valid)?)
        .bind(tx.to_vec())
        .bind(status)
        .bind(error)
        .bind(i64_of(attempts)?)
        .bind(clock::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn entry_of(r: &sqlx::any::AnyRow) -> Result<Entry, SubmitError> {
    let u =
        |v: i64| u64::try_from(v).map_err(|_| SubmitError::Journal(format!("negative value {v}")));
    Ok(Entry {
        epoch: u(r.try_get("epoch")?)?,
        kind: r.try_get("kind")?,
        round: u(r.try_get("round")?)?,
        digest: r.try_get("digest")?,
        signature: r.try_get("signature")?,
        last_valid_block_height: u(r.try_get("last_valid_block_height")?)?,
        tx: r.try_get("tx")?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        attempts: u(r.try_get("attempts")?)?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Whether a failed request may not have reached the endpoint's logic at all (connection
/// refused or reset, timeout, a proxy's error page), as opposed to an answer from it.
pub fn is_transport(e: &solana_client::client_error::ClientError) -> bool {
    use solana_client::client_error::ClientErrorKind;
    matches!(
        e.kind(),
        ClientErrorKind::Io(_) | ClientErrorKind::Reqwest(_) | ClientErrorKind::Middleware(_)
    )
}

/// A refused price in `slot`: a race at debug level, anything else as a warning. Either way the
/// refusal is journaled as the slot's transaction, so it is logged once per slot, and the next
/// slot posts again. Returns the note to journal.
fn price_refused(price: u64, slot: u64, refusal: &Refusal) -> String {
    match refusal.race() {
        Some(race) => {
            let sentence = race.sentence(0);
            tracing::debug!(price, slot, error = %race.error_name(), "{sentence}");
            metrics::counter!("backhaul_submit_raced_total", "kind" => Kind::Price.as_str(), "race" => race.as_str())
                .increment(1);
            sentence
        }
        None => {
            tracing::warn!(price, slot, error = %refusal.detail, "posting the price was refused; the next price slot posts again");
            metrics::counter!("backhaul_submit_failed_total", "kind" => Kind::Price.as_str())
                .increment(1);
            refusal.detail.clone()
        }
    }
}

/// What became of one attempt at sending a transaction.
enum Attempt {
    /// Journaled and sent; a later reconcile settles it.
    Sent,
    /// Refused before it reached the chain (journaled as failed).
    Refused,
    /// Journaled, but sending failed in transport: it may or may not have reached the chain, so
    /// it stays pending and the reconcile rebroadcasts or retires it.
    Unsent(Box<solana_client::client_error::ClientError>),
}

/// The length of a price slot, seconds: `setting` (the `price_interval_secs` setting), or half
/// of the deployment's `price_max_age_secs`; at least 1.
pub fn price_interval(setting: Option<u64>, price_max_age_secs: u64) -> u64 {
    setting.unwrap_or(price_max_age_secs / 2).max(1)
}

/// The price slot at `now` (unix seconds): `floor(now / interval)`; 0 before 1970.
pub fn price_slot(now: i64, interval: u64) -> u64 {
    u64::try_from(now).unwrap_or(0) / interval.max(1)
}

fn bincode_tx(tx: &Transaction) -> Vec<u8> {
    bincode::serialize(tx).unwrap_or_default()
}

/// Seconds by which the chain's clock may lag this oracle's reading of it without a submission
/// being refused: the band is computed for that much less time, and a previous submission that
/// expired less than twice that long ago still counts as binding.
pub const CLOCK_MARGIN_SECS: i64 = 10;

/// The price to submit at `now` towards `target`: `target` when the band of this oracle's own
/// previous submission (`previous`) allows it, else the band's edge nearest to it. Any target
/// when there is no previous submission, or it expired. Computed for a chain clock up to
/// [`CLOCK_MARGIN_SECS`] behind `now`, so that the program never finds it outside the band.
pub fn next_submission(
    previous: Option<TimedPrice>,
    target: u64,
    now: i64,
    max_age_secs: u64,
    max_change_bps: u16,
) -> u64 {
    let margin = CLOCK_MARGIN_SECS.unsigned_abs();
    let band = submission_band(
        previous,
        now.saturating_sub(CLOCK_MARGIN_SECS),
        max_age_secs.saturating_add(margin),
        max_change_bps,
    )
    .unwrap_or(PriceBand::ANY);
    band.clamp(target.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_core::price::price_band;

    /// A failure of instruction `index` with the program's error `e`.
    fn failed(index: u8, e: BackhaulError) -> TransactionError {
        TransactionError::InstructionError(index, InstructionError::Custom(u32::from(e)))
    }

    #[test]
    fn races_between_oracles_are_recognized_by_their_error_codes() {
        // A compute-budget instruction, then the Backhaul instruction.
        let programs = [compute::COMPUTE_BUDGET_PROGRAM_ID, backhaul::ID];
        let cases = [
            (BackhaulError::LedgerSealed, Race::AlreadySealed, 0x1799),
            (
                BackhaulError::AlreadyFinalized,
                Race::AlreadyFinalized,
                0x1787,
            ),
            (BackhaulError::EpochOutOfOrder, Race::EpochPassed, 0x1781),
            (BackhaulError::DoubleVote, Race::AlreadyVoted, 0x1785),
        ];
        for (e, race, code) in cases {
            // The codes of the demo's old warnings, decoded.
            assert_eq!(u32::from(e), code, "{e:?}");
            assert_eq!(Race::of(&failed(1, e), &programs), Some(race), "{e:?}");
            assert_eq!(race.error_name(), e.name());
            // Raised by another program (or an instruction index past the end), the same code
            // is not the program's race.
            assert_eq!(Race::of(&failed(0, e), &programs), None, "{e:?}");
            assert_eq!(Race::of(&failed(2, e), &programs), None, "{e:?}");
        }
        assert_eq!(
            Race::AlreadyFinalized.sentence(3),
            "epoch 3 was already finalized by another oracle"
        );
        assert_eq!(
            Race::AlreadySealed.sentence(0),
            "epoch 0's ledger was already sealed by another oracle"
        );
        // Other refusals are not races: they are warned about.
        for e in [
            BackhaulError::EpochNotEnded,
            BackhaulError::LedgerNotSealed,
            BackhaulError::NotOracle,
            BackhaulError::Paused,
            BackhaulError::ChallengePeriodActive,
            BackhaulError::NoQuorum,
            BackhaulError::ProposalVetoed,
            BackhaulError::InconsistentProposal,
            BackhaulError::ExceedsEpochEmission,
            BackhaulError::PriceJumpTooLarge,
        ] {
            assert_eq!(Race::of(&failed(1, e), &programs), None, "{e:?}");
        }
        assert_eq!(
            Race::of(
                &TransactionError::InstructionError(1, InstructionError::InvalidAccountData),
                &programs
            ),
            None
        );
        assert_eq!(
            Race::of(&TransactionError::InsufficientFundsForFee, &programs),
            None
        );
        // A custom code that no race has.
        assert_eq!(
            Race::of(
                &TransactionError::InstructionError(1, InstructionError::Custom(1)),
                &programs
            ),
            None
        );
    }

    #[test]
    fn a_transactions_programs_are_read_in_order() {
        let payer = Keypair::new();
        let ixs = compute::with_budget(
            5_000,
            Some(3),
            &[ix::finalize(&Deployment::new(Pubkey::new_unique()), 4)],
        );
        let tx = Transaction::new_signed_with_payer(
            &ixs,
            Some(&payer.pubkey()),
            &[&payer],
            Hash::default(),
        );
        assert_eq!(
            program_ids(&tx),
            vec![
                compute::COMPUTE_BUDGET_PROGRAM_ID,
                compute::COMPUTE_BUDGET_PROGRAM_ID,
                backhaul::ID
            ]
        );
        let refusal = Refusal {
            error: Some(failed(2, BackhaulError::AlreadyFinalized)),
            detail: String::new(),
            tx,
        };
        assert_eq!(refusal.race(), Some(Race::AlreadyFinalized));
    }

    #[test]
    fn failed_actions_back_off_and_are_never_given_up() {
        for attempts in 0..=5 {
            assert_eq!(retry_wait_secs(attempts, 5), 0, "{attempts}");
        }
        assert_eq!(retry_wait_secs(6, 5), 2);
        assert_eq!(retry_wait_secs(7, 5), 4);
        assert_eq!(retry_wait_secs(10, 5), 32);
        // However many attempts failed, the next one comes within MAX_BACKOFF_SECS.
        for attempts in [15, 40, 1_000, u64::MAX] {
            assert_eq!(retry_wait_secs(attempts, 5), MAX_BACKOFF_SECS, "{attempts}");
        }
    }

    #[test]
    fn price_slots_cut_the_chains_time_by_the_interval() {
        // Unset: half the staleness bound, at least one second.
        assert_eq!(price_interval(None, 21_600), 10_800);
        assert_eq!(price_interval(None, 1), 1);
        assert_eq!(price_interval(None, 0), 1);
        assert_eq!(price_interval(Some(60), 21_600), 60);
        assert_eq!(price_interval(Some(0), 21_600), 1);
        assert_eq!(price_slot(1_800_000_000, 3_600), 500_000);
        assert_eq!(price_slot(1_800_003_599, 3_600), 500_000);
        assert_eq!(price_slot(1_800_003_600, 3_600), 500_001);
        assert_eq!(price_slot(-5, 60), 0);
        assert_eq!(price_slot(7, 0), 7);
        assert_eq!(Kind::Price.as_str(), "price");
    }

    #[test]
    fn submissions_step_within_the_band_of_this_oracles_previous_one() {
        let prev = |p: u64, at: i64| {
            Some(TimedPrice {
                credits_per_token: p,
                at,
            })
        };
        // Nothing before, or expired (with the clock margin twice over): the target itself.
        assert_eq!(next_submission(None, 500, 1_000, 600, 2_000), 500);
        assert_eq!(next_submission(prev(100_000, 0), 500, 621, 600, 2_000), 500);
        assert_eq!(next_submission(None, 0, 1_000, 600, 2_000), 1);
        // Within the band: the target.
        assert_eq!(
            next_submission(prev(100_000, 0), 100_300, 70, 600, 2_000),
            100_300
        );
        // Beyond it: the edge of the band for ten seconds less, which the program accepts for
        // any chain clock at most that far behind.
        let up = next_submission(prev(100_000, 0), 200_000, 70, 600, 2_000);
        let down = next_submission(prev(100_000, 0), 1, 70, 600, 2_000);
        let band_60 = price_band(100_000, 60, 2_000).unwrap();
        assert_eq!((down, up), (band_60.lower, band_60.upper));
        for chain_now in 60..=80 {
            let program = submission_band(prev(100_000, 0), chain_now, 600, 2_000).unwrap();
            assert!(
                program.contains(up) && program.contains(down),
                "{chain_now}"
            );
        }
        // About to expire on this oracle's clock, maybe not yet on the chain's: still bounded.
        let late = next_submission(prev(100_000, 0), 200_000, 615, 600, 2_000);
        assert!(late < 200_000);
        assert!(submission_band(prev(100_000, 0), 605, 600, 2_000)
            .unwrap()
            .contains(late));
        // No time since the last one: no move.
        assert_eq!(
            next_submission(prev(100_000, 50), 200_000, 55, 600, 2_000),
            100_000
        );
    }
}

//! The few fields a claim needs, read from an account's bytes without deserializing the rest.
//!
//! Deserializing a whole `Config` (its guardians, oracles, pending parameters…) or `EpochRecord`
//! (its votes and refuted digests) and writing the config back cost a claim about 6,000 compute
//! units; these readers walk the accounts' borsh layout instead, skipping every field a claim does
//! not read, and a claim writes only the config's `total_claimed` (8 bytes) back. An existing
//! `OperatorClaim` and the recipient's SPL Token account are read the same way, and the record's
//! `claimed` and `last_epoch` written at their offsets. The unit tests below pin the readers to
//! the layouts Anchor and SPL Token write, so a change of any of these accounts' fields fails them
//! until the readers follow.
//!
//! The checks are those of `Account<'info, T>`: the account exists, is owned by the program (SPL
//! Token for the recipient) and carries the type's discriminator (is an initialized token
//! account); the bytes must hold every field read (`AccountDidNotDeserialize`).

use crate::error::BackhaulError;
use crate::state::{
    Config, EconomicsParams, EmissionParams, EpochRecord, EpochStatus, OperatorClaim,
    PendingParams, RateLimiter, Vote,
};
use anchor_lang::prelude::*;
use anchor_lang::Discriminator;

/// A forward-only reader over an account's bytes. Its reads return `Option`s (cheaper to pass
/// around on-chain than `Result`s carrying Anchor's error type); a read past the end is `None`.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// A reader over `data` after `T`'s discriminator, which must open it.
    fn after_discriminator<T: Discriminator>(data: &'a [u8]) -> Result<Self> {
        let tag = T::DISCRIMINATOR;
        let found = data
            .get(..tag.len())
            .ok_or(ErrorCode::AccountDiscriminatorNotFound)?;
        require!(found == tag, ErrorCode::AccountDiscriminatorMismatch);
        Ok(Self {
            data,
            at: tag.len(),
        })
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let bytes = self.data.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.array()?))
    }

    fn pubkey(&mut self) -> Option<Pubkey> {
        Some(Pubkey::new_from_array(self.array()?))
    }

    /// Skips a borsh `Option<T>` of a fixed-size `T` of `size` bytes.
    fn skip_option(&mut self, size: usize) -> Option<()> {
        match self.u8()? {
            0 => Some(()),
            1 => self.skip(size),
            _ => None,
        }
    }

    /// Skips a borsh `Vec<T>` of fixed-size `T`s of `size` bytes each.
    fn skip_vec(&mut self, size: usize) -> Option<()> {
        let len = u32::from_le_bytes(self.array()?);
        self.skip(usize::try_from(len).ok()?.checked_mul(size)?)
    }
}

/// Checks that `info` exists and is owned by the program, as `Account<'info, T>` does.
fn owned_by_program(info: &AccountInfo, program_id: &Pubkey) -> Result<()> {
    if *info.owner == anchor_lang::system_program::ID && info.lamports() == 0 {
        return err!(ErrorCode::AccountNotInitialized);
    }
    if info.owner != program_id {
        return Err(Error::from(ErrorCode::AccountOwnedByWrongProgram)
            .with_pubkeys((*info.owner, *program_id)));
    }
    Ok(())
}

/// What a claim reads from the deployment's `Config`, and where its `total_claimed` lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigView {
    pub bump: u8,
    pub mint: Pubkey,
    pub vault: Pubkey,
    pub paused_until: i64,
    pub total_minted: u64,
    pub total_claimed: u64,
    /// Byte offset of `total_claimed` in the account's data.
    pub total_claimed_at: usize,
}

impl ConfigView {
    /// Reads a `Config` owned by the program.
    pub fn load(info: &AccountInfo, program_id: &Pubkey) -> Result<Self> {
        owned_by_program(info, program_id)?;
        Self::read(&info.try_borrow_data()?)
    }

    /// Reads the fields from a `Config`'s bytes (discriminator first).
    pub fn read(data: &[u8]) -> Result<Self> {
        let mut c = Cursor::after_discriminator::<Config>(data)?;
        Self::fields(&mut c).ok_or_else(|| ErrorCode::AccountDidNotDeserialize.into())
    }

    fn fields(c: &mut Cursor) -> Option<Self> {
        c.skip(1)?; // version
        let bump = c.u8()?;
        c.skip(1 + 32)?; // vault_bump, admin
        c.skip_option(32)?; // pending_admin
        c.skip_vec(32)?; // guardians
        let mint = c.pubkey()?;
        let vault = c.pubkey()?;
        c.skip(32)?; // price_feed
        c.skip_vec(32)?; // oracles
                         // threshold, genesis_ts, epoch_length_secs, challenge_period_secs,
                         // governance_delay_secs, next_change_id
        c.skip(1 + 8 * 5)?;
        c.skip_option(PendingParams::INIT_SPACE)?;
        c.skip(EmissionParams::INIT_SPACE + RateLimiter::INIT_SPACE + EconomicsParams::INIT_SPACE)?;
        c.skip(1 + 8)?; // decimals, initial_supply
        let paused_until = c.i64()?;
        // pause_available_at, next_epoch, last_reward_total, last_reward_leaf_count
        c.skip(8 * 4)?;
        let total_minted = c.u64()?;
        c.skip(8 * 2)?; // scheduled_minted, total_reemitted
        let total_claimed_at = c.at;
        let total_claimed = c.u64()?;
        Some(Self {
            bump,
            mint,
            vault,
            paused_until,
            total_minted,
            total_claimed,
            total_claimed_at,
        })
    }

    pub fn is_paused(&self, now: i64) -> bool {
        now < self.paused_until
    }

    /// Signer seeds of the config PDA (the vault's owner), as [`Config::signer_seeds`].
    pub fn signer_seeds(&self) -> [&[u8]; 3] {
        [
            crate::constants::CONFIG_SEED,
            self.mint.as_ref(),
            core::slice::from_ref(&self.bump),
        ]
    }

    /// Adds `amount` to the claimed total and writes it into the config at `info` (the account
    /// this view was read from): checked, and never above what was minted
    /// ([`Config::invariant`]'s `total_claimed ≤ total_minted`). Returns the new total.
    pub fn add_claimed(&mut self, info: &AccountInfo, amount: u64) -> Result<u64> {
        let total = self
            .total_claimed
            .checked_add(amount)
            .ok_or(BackhaulError::Overflow)?;
        require!(total <= self.total_minted, BackhaulError::InvariantViolated);
        let end = self
            .total_claimed_at
            .checked_add(8)
            .ok_or(ErrorCode::AccountDidNotSerialize)?;
        let mut data = info.try_borrow_mut_data()?;
        data.get_mut(self.total_claimed_at..end)
            .ok_or(ErrorCode::AccountDidNotSerialize)?
            .copy_from_slice(&total.to_le_bytes());
        self.total_claimed = total;
        Ok(total)
    }
}

/// What a claim reads from an `EpochRecord`: its deployment, epoch, status and reward tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRecordView {
    pub config: Pubkey,
    pub epoch: u64,
    pub status: EpochStatus,
    pub reward_root: [u8; 32],
    pub reward_leaf_count: u64,
    pub reward_total: u64,
}

impl EpochRecordView {
    /// Reads an `EpochRecord` owned by the program.
    pub fn load(info: &AccountInfo, program_id: &Pubkey) -> Result<Self> {
        owned_by_program(info, program_id)?;
        Self::read(&info.try_borrow_data()?)
    }

    /// Reads the fields from an `EpochRecord`'s bytes (discriminator first).
    pub fn read(data: &[u8]) -> Result<Self> {
        let mut c = Cursor::after_discriminator::<EpochRecord>(data)?;
        Self::fields(&mut c).ok_or_else(|| ErrorCode::AccountDidNotDeserialize.into())
    }

    fn fields(c: &mut Cursor) -> Option<Self> {
        let config = c.pubkey()?;
        c.skip(1)?; // version
        let epoch = c.u64()?;
        c.skip(1)?; // bump
        let status = match c.u8()? {
            0 => EpochStatus::Voting,
            1 => EpochStatus::Proposed,
            2 => EpochStatus::Finalized,
            3 => EpochStatus::Vetoed,
            _ => return None,
        };
        c.skip(4 + 8 + 1)?; // round, round_started_at, vetoes
        c.skip_vec(Vote::INIT_SPACE)?; // votes
                                       // proposal: reward_root, reward_leaf_count, reward_total first
        let reward_root = c.array()?;
        let reward_leaf_count = c.u64()?;
        let reward_total = c.u64()?;
        Some(Self {
            config,
            epoch,
            status,
            reward_root,
            reward_leaf_count,
            reward_total,
        })
    }
}

/// What a claim reads from an existing `OperatorClaim`; a claim writes back only `claimed` and
/// `last_epoch`, which sit at fixed offsets (every field of the record has a fixed size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorClaimView {
    pub config: Pubkey,
    pub operator: Pubkey,
    pub claimed: u64,
}

impl OperatorClaimView {
    /// Offset of `claimed`: after the discriminator, `config` and `operator`.
    const CLAIMED_AT: usize = 8 + 32 + 32;

    /// Reads an `OperatorClaim`'s bytes (discriminator first; the owner is the caller's check).
    pub fn read(data: &[u8]) -> Result<Self> {
        let mut c = Cursor::after_discriminator::<OperatorClaim>(data)?;
        Self::fields(&mut c).ok_or_else(|| ErrorCode::AccountDidNotDeserialize.into())
    }

    fn fields(c: &mut Cursor) -> Option<Self> {
        Some(Self {
            config: c.pubkey()?,
            operator: c.pubkey()?,
            claimed: c.u64()?,
        })
    }

    /// Writes `claimed` and `last_epoch` into the record at `info`.
    pub fn store(info: &AccountInfo, claimed: u64, last_epoch: u64) -> Result<()> {
        let mut data = info.try_borrow_mut_data()?;
        let fields = data
            .get_mut(Self::CLAIMED_AT..Self::CLAIMED_AT + 16)
            .ok_or(ErrorCode::AccountDidNotSerialize)?;
        fields[..8].copy_from_slice(&claimed.to_le_bytes());
        fields[8..].copy_from_slice(&last_epoch.to_le_bytes());
        Ok(())
    }
}

/// What a claim reads from the recipient, a classic SPL Token account: its mint and owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenAccountView {
    pub mint: Pubkey,
    pub owner: Pubkey,
}

impl TokenAccountView {
    /// Bytes of an SPL Token account.
    const LEN: usize = 165;
    /// Offset of its `state` (0: uninitialized).
    const STATE_AT: usize = 108;

    /// Reads an initialized token account of the SPL Token program, with the checks of
    /// `Account<'info, TokenAccount>`: the owner program, the size, the initialized state.
    pub fn load(info: &AccountInfo) -> Result<Self> {
        if *info.owner == anchor_lang::system_program::ID && info.lamports() == 0 {
            return err!(ErrorCode::AccountNotInitialized);
        }
        if *info.owner != anchor_spl::token::ID {
            return Err(Error::from(ErrorCode::AccountOwnedByWrongProgram)
                .with_pubkeys((*info.owner, anchor_spl::token::ID)));
        }
        Self::read(&info.try_borrow_data()?)
    }

    fn read(data: &[u8]) -> Result<Self> {
        require!(
            data.len() == Self::LEN && data.get(Self::STATE_AT).is_some_and(|s| *s != 0),
            ErrorCode::AccountDidNotDeserialize
        );
        let mut c = Cursor { data, at: 0 };
        (|| {
            Some(Self {
                mint: c.pubkey()?,
                owner: c.pubkey()?,
            })
        })()
        .ok_or_else(|| ErrorCode::AccountDidNotDeserialize.into())
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::state::{ConsensusParams, EpochParams, EpochProposal};

    fn key(b: u8) -> Pubkey {
        Pubkey::new_from_array([b; 32])
    }

    fn params(x: u64) -> EpochParams {
        EpochParams {
            emission: EmissionParams {
                initial_per_epoch: x,
                decay_bps: 7,
                decay_period_epochs: x + 1,
                floor_per_epoch: x + 2,
                lifetime_cap: x + 3,
            },
            economics: EconomicsParams {
                price_max_age_secs: x + 4,
                price_max_change_bps: 9,
                net_emissions_cap: x + 5,
                burn_smoothing_epochs: x + 6,
                usage_cap_bps: 11,
            },
            rate_window_secs: x + 7,
            rate_capacity: x + 8,
            consensus: ConsensusParams {
                credits_per_gib: x + 9,
                pair_cap_bytes: x + 10,
                max_rate_bytes_per_sec: x + 11,
                grace_secs: x + 12,
            },
        }
    }

    /// A config whose every field differs from its neighbours, with or without the optional
    /// fields and with `n` guardians and oracles.
    fn config(n: u8, optional: bool) -> Config {
        let p = params(1_000);
        Config {
            version: 6,
            bump: 254,
            vault_bump: 253,
            admin: key(1),
            pending_admin: optional.then(|| key(2)),
            guardians: (0..n).map(|i| key(10 + i)).collect(),
            mint: key(3),
            vault: key(4),
            price_feed: key(5),
            oracles: (0..n).map(|i| key(20 + i)).collect(),
            threshold: n,
            genesis_ts: -11,
            epoch_length_secs: 12,
            challenge_period_secs: 13,
            governance_delay_secs: 14,
            next_change_id: 15,
            pending_params: optional.then(|| PendingParams {
                from_epoch: 16,
                params: params(2_000),
            }),
            emission: p.emission,
            rate_limiter: RateLimiter {
                window_secs: 17,
                capacity: 18,
                level: 19,
                last_ts: 20,
            },
            economics: p.economics,
            decimals: 6,
            initial_supply: 21,
            paused_until: 1_700_000_022,
            pause_available_at: 23,
            next_epoch: 24,
            last_reward_total: 25,
            last_reward_leaf_count: 26,
            total_minted: 27_000,
            scheduled_minted: 28,
            total_reemitted: 29,
            total_claimed: 0,
            burn_ema: 31,
            last_usage_total: 32,
            last_usage_leaf_count: 33,
            total_burned: 34,
            burned_finalized: 35,
            credits_issued: 36,
            credits_settled: 37,
            credits_unpaid: 38,
            last_usage_cost_total: 39,
            credits_issued_finalized: 40,
            consensus: p.consensus,
            oracle_bond_lamports: 41,
        }
    }

    fn serialized<T: AccountSerialize>(value: &T) -> Vec<u8> {
        let mut data = vec![];
        value.try_serialize(&mut data).expect("serialize");
        data
    }

    /// The account's bytes: the value, then zeros up to its allocated size.
    fn bytes<T: AccountSerialize>(value: &T, size: usize) -> Vec<u8> {
        let mut data = serialized(value);
        assert!(data.len() <= size);
        data.resize(size, 0);
        data
    }

    #[test]
    fn the_config_view_reads_what_anchor_wrote_and_writes_only_the_claimed_total() {
        for n in 1..=4u8 {
            for optional in [false, true] {
                let mut cfg = config(n, optional);
                cfg.total_claimed = 26_000;
                let mut data = bytes(&cfg, Config::SIZE);
                let mut view = ConfigView::read(&data).expect("read");
                assert_eq!(
                    (view.bump, view.mint, view.vault),
                    (cfg.bump, cfg.mint, cfg.vault)
                );
                assert_eq!(
                    (view.paused_until, view.total_minted, view.total_claimed),
                    (cfg.paused_until, cfg.total_minted, cfg.total_claimed)
                );
                assert_eq!(view.signer_seeds(), cfg.signer_seeds());

                // Writing the total changes that field and nothing else.
                let mut lamports = 0;
                let (program, owner) = (key(99), key(98));
                let info = AccountInfo::new(
                    &program,
                    false,
                    true,
                    &mut lamports,
                    &mut data,
                    &owner,
                    false,
                );
                assert_eq!(view.add_claimed(&info, 1_000).expect("add"), 27_000);
                // Nothing beyond what was minted.
                assert!(view.add_claimed(&info, 1).is_err());
                drop(info);
                let read = Config::try_deserialize(&mut &data[..]).expect("deserialize");
                cfg.total_claimed = 27_000;
                assert_eq!(bytes(&read, Config::SIZE), bytes(&cfg, Config::SIZE));
                assert_eq!(view.total_claimed, 27_000);
            }
        }
    }

    #[test]
    fn the_config_view_refuses_other_types_and_short_data() {
        let data = bytes(&config(2, true), Config::SIZE);
        let mut other = data.clone();
        other[0] ^= 1;
        assert!(ConfigView::read(&other).is_err());
        let used = serialized(&config(2, true)).len();
        assert!(ConfigView::read(&data[..used]).is_ok());
        // Every truncation before the claimed total's end fails.
        let view = ConfigView::read(&data).expect("read");
        for len in [0, 7, 100, view.total_claimed_at + 7] {
            assert!(ConfigView::read(&data[..len]).is_err(), "{len}");
        }
        // A malformed option tag is refused, not read as a value.
        let mut bad = data.clone();
        bad[8 + 1 + 1 + 1 + 32] = 2;
        assert!(ConfigView::read(&bad).is_err());
    }

    fn record(votes: usize, status: EpochStatus) -> EpochRecord {
        EpochRecord {
            config: key(1),
            version: 6,
            epoch: 0x0102_0304_0506_0708,
            bump: 250,
            status,
            round: 3,
            round_started_at: 4,
            vetoes: 2,
            votes: (0..votes)
                .map(|i| Vote {
                    oracle: key(30 + i as u8),
                    digest: [40 + i as u8; 32],
                })
                .collect(),
            proposal: EpochProposal {
                reward_root: [7; 32],
                reward_leaf_count: 8,
                reward_total: 9,
                allocation: 10,
                dataset_hash: [11; 32],
                usage_root: [12; 32],
                usage_leaf_count: 13,
                usage_total: 14,
                credits_consumed: 15,
                usage_cost_total: 16,
                usage_cost: 17,
            },
            proposal_digest: [18; 32],
            vetoed_digest: [19; 32],
            banned_until: 20,
            quorum_at: 21,
            finalizable_at: 22,
            finalized_at: 23,
            refuted: vec![[24; 32]; votes.min(usize::from(crate::constants::MAX_REFUTED_DIGESTS))],
        }
    }

    #[test]
    fn the_epoch_record_view_reads_what_anchor_wrote() {
        for votes in 0..=crate::constants::MAX_ORACLES as usize {
            for status in [
                EpochStatus::Voting,
                EpochStatus::Proposed,
                EpochStatus::Finalized,
                EpochStatus::Vetoed,
            ] {
                let r = record(votes, status);
                let data = bytes(&r, EpochRecord::SIZE);
                let view = EpochRecordView::read(&data).expect("read");
                assert_eq!(
                    view,
                    EpochRecordView {
                        config: r.config,
                        epoch: r.epoch,
                        status: r.status,
                        reward_root: r.proposal.reward_root,
                        reward_leaf_count: r.proposal.reward_leaf_count,
                        reward_total: r.proposal.reward_total,
                    }
                );
            }
        }
        let data = bytes(&record(1, EpochStatus::Finalized), EpochRecord::SIZE);
        let mut other = data.clone();
        other[3] ^= 1;
        assert!(EpochRecordView::read(&other).is_err());
        assert!(EpochRecordView::read(&data[..8 + 32 + 1 + 8 + 1 + 1 + 13 + 4 + 64]).is_err());
        let mut bad = data;
        bad[8 + 32 + 1 + 8 + 1] = 4;
        assert!(EpochRecordView::read(&bad).is_err());
    }

    #[test]
    fn the_claim_record_view_reads_and_writes_where_anchor_does() {
        let mut record = OperatorClaim {
            config: key(1),
            operator: key(2),
            claimed: 3,
            last_epoch: 4,
            bump: 5,
        };
        let mut data = bytes(&record, OperatorClaim::SIZE);
        assert_eq!(
            OperatorClaimView::read(&data).expect("read"),
            OperatorClaimView {
                config: key(1),
                operator: key(2),
                claimed: 3
            }
        );
        let mut lamports = 0;
        let (address, owner) = (key(99), key(98));
        let info = AccountInfo::new(
            &address,
            false,
            true,
            &mut lamports,
            &mut data,
            &owner,
            false,
        );
        OperatorClaimView::store(&info, 30, 40).expect("store");
        drop(info);
        (record.claimed, record.last_epoch) = (30, 40);
        assert_eq!(data, bytes(&record, OperatorClaim::SIZE));
        let mut other = data.clone();
        other[0] ^= 1;
        assert!(OperatorClaimView::read(&other).is_err());
        assert!(OperatorClaimView::read(&data[..8 + 64 + 7]).is_err());
    }

    #[test]
    fn the_token_account_view_reads_the_mint_and_owner() {
        use anchor_lang::solana_program::program_pack::Pack;
        use anchor_spl::token::spl_token::state::{Account, AccountState};
        let account = Account {
            mint: key(1),
            owner: key(2),
            amount: 3,
            state: AccountState::Initialized,
            ..Account::default()
        };
        let mut data = vec![0u8; Account::LEN];
        Account::pack(account, &mut data).expect("pack");
        assert_eq!(
            TokenAccountView::read(&data).expect("read"),
            TokenAccountView {
                mint: key(1),
                owner: key(2)
            }
        );
        // Frozen accounts read too (SPL Token refuses to pay them); uninitialized ones and other
        // sizes do not.
        data[TokenAccountView::STATE_AT] = AccountState::Frozen as u8;
        assert!(TokenAccountView::read(&data).is_ok());
        data[TokenAccountView::STATE_AT] = AccountState::Uninitialized as u8;
        assert!(TokenAccountView::read(&data).is_err());
        data[TokenAccountView::STATE_AT] = AccountState::Initialized as u8;
        assert!(TokenAccountView::read(&data[..164]).is_err());
        data.push(0);
        assert!(TokenAccountView::read(&data).is_err());
    }
}

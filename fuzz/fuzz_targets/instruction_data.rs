//! The program's instruction data: Anchor's discriminator dispatch and the borsh decoding of
//! every instruction's arguments, through the program's real entry point.
//!
//! Properties:
//! - discriminators are distinct and none is a prefix of another or of the event tag, so dispatch
//!   is unambiguous;
//! - for any bytes, the entry point (called with no accounts) never panics and never succeeds:
//!   data naming an instruction whose arguments decode reaches account validation and stops at
//!   "not enough accounts"; arguments that do not decode give `InstructionDidNotDeserialize`;
//!   anything else is `InstructionFallbackNotFound` (or the event handler's missing account);
//! - decoded arguments re-encode to exactly the bytes they were decoded from;
//! - arguments built from arbitrary values encode, decode and dispatch the same way.
#![no_main]

use anchor_lang::error::ErrorCode;
use anchor_lang::event::EVENT_IX_TAG_LE;
use anchor_lang::prelude::{AccountInfo, Pubkey};
use anchor_lang::solana_program::program_error::ProgramError;
use anchor_lang::{AnchorDeserialize, AnchorSerialize, Discriminator, InstructionData};
use arbitrary::{Arbitrary, Unstructured};
use backhaul::instruction as ix;
use backhaul::instructions::InitializeParams;
use backhaul::state::{
    ConsensusParams, EconomicsParams, EmissionParams, EpochProposal, GovernanceChange, ParamsChange,
};
use libfuzzer_sys::fuzz_target;

/// What the entry point must answer for some instruction data and no accounts.
#[derive(Debug, PartialEq)]
enum Expect {
    NotEnoughAccounts,
    DidNotDeserialize,
    FallbackNotFound,
    EventNeedsAccount,
}

fn code(e: ErrorCode) -> ProgramError {
    ProgramError::Custom(e as u32)
}

/// If `data` names `T`, decodes its arguments, checks they re-encode to the bytes they came
/// from, and says what the entry point must answer.
fn decode<T: AnchorDeserialize + AnchorSerialize + Discriminator>(data: &[u8]) -> Option<Expect> {
    let rest = data.strip_prefix(T::DISCRIMINATOR)?;
    let mut cursor = rest;
    Some(match T::deserialize(&mut cursor) {
        Ok(value) => {
            let used = rest.len() - cursor.len();
            let again = borsh::to_vec(&value).expect("encode");
            assert_eq!(
                again,
                rest[..used],
                "arguments do not re-encode to their bytes"
            );
            Expect::NotEnoughAccounts
        }
        Err(_) => Expect::DidNotDeserialize,
    })
}

macro_rules! all_instructions {
    ($m:ident, $($arg:expr),*) => {
        $m!(
            $($arg,)*
            ix::Initialize, ix::ProposeRoot, ix::Veto, ix::Finalize, ix::Claim, ix::SubmitPrice,
            ix::BuyCredits, ix::SealEpoch, ix::SettleUsage, ix::QueueChange, ix::CancelChange,
            ix::ApplyChange, ix::ProposeAdmin, ix::AcceptAdmin, ix::SetPaused
        )
    };
}

macro_rules! first_match {
    ($data:expr, $($t:ty),*) => {{
        let data: &[u8] = $data;
        None$(.or_else(|| decode::<$t>(data)))*
    }};
}

macro_rules! discriminators {
    ($($t:ty),*) => {
        [$(<$t as Discriminator>::DISCRIMINATOR),*]
    };
}

fn expected(data: &[u8]) -> Expect {
    all_instructions!(first_match, data).unwrap_or(if data.starts_with(EVENT_IX_TAG_LE) {
        Expect::EventNeedsAccount
    } else {
        Expect::FallbackNotFound
    })
}

fn run(data: &[u8]) {
    let expect = expected(data);
    let program_id = backhaul::ID;
    let accounts: &[AccountInfo] = &[];
    let result = backhaul::entry(&program_id, accounts, data);
    let want = match expect {
        Expect::NotEnoughAccounts => code(ErrorCode::AccountNotEnoughKeys),
        Expect::DidNotDeserialize => code(ErrorCode::InstructionDidNotDeserialize),
        Expect::FallbackNotFound => code(ErrorCode::InstructionFallbackNotFound),
        Expect::EventNeedsAccount => ProgramError::NotEnoughAccountKeys,
    };
    assert_eq!(result, Err(want), "{expect:?} for {data:02x?}");
    // Another program id is refused before anything is decoded.
    let other = Pubkey::new_from_array([7; 32]);
    assert_eq!(
        backhaul::entry(&other, accounts, data),
        Err(code(ErrorCode::DeclaredProgramIdMismatch))
    );
}

fn check_discriminators() {
    let all: Vec<&[u8]> = all_instructions!(discriminators,).to_vec();
    for (i, a) in all.iter().enumerate() {
        assert!(!a.is_empty());
        assert!(!EVENT_IX_TAG_LE.starts_with(a) && !a.starts_with(EVENT_IX_TAG_LE));
        for b in &all[i + 1..] {
            assert!(!a.starts_with(b) && !b.starts_with(a), "ambiguous dispatch");
        }
    }
}

fn key(u: &mut Unstructured) -> arbitrary::Result<Pubkey> {
    Ok(Pubkey::new_from_array(u.arbitrary()?))
}

fn emission(u: &mut Unstructured) -> arbitrary::Result<EmissionParams> {
    Ok(EmissionParams {
        initial_per_epoch: u.arbitrary()?,
        decay_bps: u.arbitrary()?,
        decay_period_epochs: u.arbitrary()?,
        floor_per_epoch: u.arbitrary()?,
        lifetime_cap: u.arbitrary()?,
    })
}

fn economics(u: &mut Unstructured) -> arbitrary::Result<EconomicsParams> {
    Ok(EconomicsParams {
        price_max_age_secs: u.arbitrary()?,
        price_max_change_bps: u.arbitrary()?,
        net_emissions_cap: u.arbitrary()?,
        burn_smoothing_epochs: u.arbitrary()?,
        usage_cap_bps: u.arbitrary()?,
    })
}

fn consensus(u: &mut Unstructured) -> arbitrary::Result<ConsensusParams> {
    Ok(ConsensusParams {
        credits_per_gib: u.arbitrary()?,
        pair_cap_bytes: u.arbitrary()?,
        max_rate_bytes_per_sec: u.arbitrary()?,
        grace_secs: u.arbitrary()?,
    })
}

fn maybe<T>(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> arbitrary::Result<T>,
) -> arbitrary::Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn change(u: &mut Unstructured) -> arbitrary::Result<GovernanceChange> {
    Ok(match u.int_in_range(0..=2)? {
        0 => GovernanceChange::Params(ParamsChange {
            challenge_period_secs: u.arbitrary()?,
            governance_delay_secs: u.arbitrary()?,
            emission: maybe(u, emission)?,
            rate_window_secs: u.arbitrary()?,
            rate_capacity: u.arbitrary()?,
            economics: maybe(u, economics)?,
            consensus: maybe(u, consensus)?,
        }),
        1 => GovernanceChange::Oracles {
            oracles: keys(u)?,
            threshold: u.arbitrary()?,
        },
        _ => GovernanceChange::Guardians {
            guardians: keys(u)?,
        },
    })
}

fn keys(u: &mut Unstructured) -> arbitrary::Result<Vec<Pubkey>> {
    let n = u.int_in_range(0..=12)?;
    (0..n).map(|_| key(u)).collect()
}

fn proof(u: &mut Unstructured) -> arbitrary::Result<Vec<[u8; 32]>> {
    let n = u.int_in_range(0..=40)?;
    (0..n).map(|_| u.arbitrary()).collect()
}

/// Instruction data built from arbitrary argument values by the same code clients use.
fn structured(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=14)? {
        0 => ix::Initialize {
            params: InitializeParams {
                admin: key(u)?,
                guardians: keys(u)?,
                oracles: keys(u)?,
                threshold: u.arbitrary()?,
                genesis_ts: u.arbitrary()?,
                epoch_length_secs: u.arbitrary()?,
                challenge_period_secs: u.arbitrary()?,
                governance_delay_secs: u.arbitrary()?,
                emission: emission(u)?,
                rate_window_secs: u.arbitrary()?,
                rate_capacity: u.arbitrary()?,
                economics: economics(u)?,
                consensus: consensus(u)?,
            },
        }
        .data(),
        1 => ix::ProposeRoot {
            epoch: u.arbitrary()?,
            proposal: EpochProposal {
                reward_root: u.arbitrary()?,
                reward_leaf_count: u.arbitrary()?,
                reward_total: u.arbitrary()?,
                allocation: u.arbitrary()?,
                dataset_hash: u.arbitrary()?,
                usage_root: u.arbitrary()?,
                usage_leaf_count: u.arbitrary()?,
                usage_total: u.arbitrary()?,
                credits_consumed: u.arbitrary()?,
                usage_cost_total: u.arbitrary()?,
                usage_cost: u.arbitrary()?,
            },
        }
        .data(),
        2 => ix::Veto {
            epoch: u.arbitrary()?,
        }
        .data(),
        3 => ix::Finalize {
            epoch: u.arbitrary()?,
        }
        .data(),
        4 => ix::Claim {
            epoch: u.arbitrary()?,
            cumulative: u.arbitrary()?,
            proof: proof(u)?,
        }
        .data(),
        5 => ix::SubmitPrice {
            credits_per_token: u.arbitrary()?,
        }
        .data(),
        6 => ix::BuyCredits {
            token_amount: u.arbitrary()?,
            min_credits: u.arbitrary()?,
            beneficiary: key(u)?,
            epoch: u.arbitrary()?,
        }
        .data(),
        7 => ix::SealEpoch {
            epoch: u.arbitrary()?,
        }
        .data(),
        8 => ix::SettleUsage {
            epoch: u.arbitrary()?,
            consumed_cumulative: u.arbitrary()?,
            proof: proof(u)?,
        }
        .data(),
        9 => ix::QueueChange {
            id: u.arbitrary()?,
            change: change(u)?,
        }
        .data(),
        10 => ix::CancelChange { id: u.arbitrary()? }.data(),
        11 => ix::ApplyChange { id: u.arbitrary()? }.data(),
        12 => ix::ProposeAdmin { new_admin: key(u)? }.data(),
        13 => ix::AcceptAdmin {}.data(),
        _ => ix::SetPaused {
            paused: u.arbitrary()?,
        }
        .data(),
    })
}

#[derive(Debug)]
struct Input<'a>(&'a [u8]);

impl<'a> Arbitrary<'a> for Input<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Input(u.bytes(u.len())?))
    }
}

fuzz_target!(|input: Input| {
    check_discriminators();
    let data = input.0;
    // Raw bytes as instruction data.
    run(data);
    // The same bytes as arguments behind each instruction's discriminator.
    if let Some((pick, args)) = data.split_first() {
        let all: Vec<&[u8]> = all_instructions!(discriminators,).to_vec();
        let mut framed = all[usize::from(*pick) % all.len()].to_vec();
        framed.extend_from_slice(args);
        run(&framed);
    }
    // Well-formed data from arbitrary argument values always decodes and reaches the accounts.
    let mut u = Unstructured::new(data);
    if let Ok(built) = structured(&mut u) {
        assert_eq!(expected(&built), Expect::NotEnoughAccounts, "{built:02x?}");
        run(&built);
    }
});

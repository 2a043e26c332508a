//! Oracle operators: the bond a deployment may ask of each oracle before it votes. `deposit`
//! adds lamports, `unbond` starts the withdrawal (the oracle cannot vote from then on), `withdraw`
//! takes the whole bond back two challenge periods later, `show` prints it.

use crate::context::Context;
use crate::output::{emit, format_ts, relative};
use crate::tx;
use anyhow::bail;
use backhaul_sdk::ix;
use backhaul_sdk::state::OracleBond;
use clap::{Args, Subcommand};
use serde::Serialize;
use solana_sdk::pubkey::Pubkey;
use std::process::ExitCode;

const LAMPORTS_PER_SOL: f64 = 1_000_000_000.0;

#[derive(Subcommand, Debug)]
pub enum OracleCommand {
    /// Add lamports to this oracle key's bond (sign with the oracle's keypair).
    Bond(BondArgs),
    /// Start withdrawing the bond: the oracle cannot vote from now on, and may withdraw two
    /// challenge periods later.
    Unbond,
    /// Withdraw the whole bond once its lock has passed (closes the bond account).
    Withdraw,
    /// The bond of an oracle key (the signer's by default) and what the deployment asks.
    ShowBond(ShowBondArgs),
}

#[derive(Args, Debug)]
pub struct BondArgs {
    /// Lamports to add (1 SOL = 1,000,000,000 lamports).
    #[arg(long)]
    pub lamports: u64,
}

#[derive(Args, Debug)]
pub struct ShowBondArgs {
    /// The oracle key (default: the signer's).
    pub oracle: Option<String>,
}

/// An oracle's bond as the chain holds it.
#[derive(Serialize, Debug)]
pub struct BondView {
    pub oracle: String,
    pub bond_account: String,
    /// Lamports bonded (above the account's rent).
    pub bonded: u64,
    /// What the deployment asks of each oracle to vote.
    pub required: u64,
    pub in_oracle_set: bool,
    /// Whether this bond lets the oracle vote now.
    pub may_vote: bool,
    /// The chain's clock when read.
    pub now: i64,
    /// When unbonding started, if it did.
    pub unbonding_at: Option<i64>,
    /// The earliest withdrawal, if unbonding.
    pub withdrawable_at: Option<i64>,
    /// Lamports slashed by fraud proofs so far.
    pub slashed: u64,
}

/// What a bond command sent.
#[derive(Serialize, Debug)]
pub struct BondOutcome {
    pub action: String,
    pub signature: String,
    pub bond: BondView,
}

/// The bond of `oracle`.
pub async fn show(ctx: &Context, oracle: Pubkey) -> anyhow::Result<BondView> {
    let (d, c) = ctx.deployment_config().await?;
    let address = d.bond(&oracle);
    let bond: Option<OracleBond> = ctx.account(&address).await?;
    let raw = ctx.raw_account(&address).await?;
    let bonded = match &raw {
        Some(a) => {
            let rent = ctx
                .rpc
                .get_minimum_balance_for_rent_exemption(a.data.len())
                .await
                .map_err(|e| ctx.rpc_error(e))?;
            a.lamports.saturating_sub(rent)
        }
        None => 0,
    };
    let unbonding = bond.as_ref().filter(|b| b.unbonding_at != 0);
    let in_set = c.oracles.contains(&oracle);
    let now = ctx.chain_time().await?;
    Ok(BondView {
        now,
        oracle: oracle.to_string(),
        bond_account: address.to_string(),
        bonded,
        required: c.oracle_bond_lamports,
        in_oracle_set: in_set,
        may_vote: in_set
            && (c.oracle_bond_lamports == 0
                || (unbonding.is_none() && bond.is_some() && bonded >= c.oracle_bond_lamports)),
        unbonding_at: unbonding.map(|b| b.unbonding_at),
        withdrawable_at: unbonding.map(|b| b.withdrawable_at),
        slashed: bond.as_ref().map_or(0, |b| b.slashed),
    })
}

fn print_bond(v: &BondView) {
    let sol = |l: u64| format!("{:.9} SOL", l as f64 / LAMPORTS_PER_SOL);
    println!("oracle            {}", v.oracle);
    println!("bond account      {}", v.bond_account);
    println!("bonded            {}", sol(v.bonded));
    println!("required to vote  {}", sol(v.required));
    println!("in the oracle set {}", v.in_oracle_set);
    println!("may vote          {}", v.may_vote);
    if let (Some(at), Some(until)) = (v.unbonding_at, v.withdrawable_at) {
        println!("unbonding since   {}", format_ts(at));
        println!(
            "withdrawable at   {} ({})",
            format_ts(until),
            relative(until, v.now)
        );
    }
    if v.slashed > 0 {
        println!("slashed so far    {}", sol(v.slashed));
    }
}

pub async fn run(ctx: &Context, command: OracleCommand) -> anyhow::Result<ExitCode> {
    let out = ctx.output;
    let (d, _) = ctx.deployment_config().await?;
    let oracle = ctx.signer_pubkey()?;
    let (action, ix) = match command {
        OracleCommand::ShowBond(a) => {
            let key = match a.oracle {
                Some(k) => crate::context::parse_pubkey("oracle", &k)?,
                None => oracle,
            };
            let v = show(ctx, key).await?;
            emit(out, &v, print_bond);
            return Ok(ExitCode::SUCCESS);
        }
        OracleCommand::Bond(a) => {
            if a.lamports == 0 {
                bail!("--lamports must be above zero; nothing was sent");
            }
            ("bond", ix::deposit_bond(&d, &oracle, a.lamports))
        }
        OracleCommand::Unbond => ("unbond", ix::unbond(&d, &oracle)),
        OracleCommand::Withdraw => {
            let v = show(ctx, oracle).await?;
            let now = ctx.chain_time().await?;
            match v.withdrawable_at {
                None => bail!(
                    "the bond of {oracle} is not unbonding: run `backhaul oracle unbond` first, \
                     then withdraw two challenge periods later; nothing was sent"
                ),
                Some(at) if at > now => bail!(
                    "the bond of {oracle} is locked until {} ({}); nothing was sent",
                    format_ts(at),
                    relative(at, now)
                ),
                Some(_) => ("withdraw", ix::withdraw_bond(&d, &oracle)),
            }
        }
    };
    let sig = tx::send(ctx, &format!("oracle {action}"), &[ix], &[]).await?;
    let o = BondOutcome {
        action: action.into(),
        signature: sig.to_string(),
        bond: show(ctx, oracle).await?,
    };
    emit(out, &o, |o| {
        println!("{}: {}", o.action, o.signature);
        print_bond(&o.bond);
    });
    Ok(ExitCode::SUCCESS)
}

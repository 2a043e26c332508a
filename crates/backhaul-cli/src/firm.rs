//! AI firms: buy credits with a slippage bound, see credits and unsettled usage, settle proven
//! usage, and authorize (grant) or revoke client keys at the oracles.

use crate::amount::{format_tokens, parse_tokens};
use crate::context::{parse_pubkey, signing_key, wall_time, Context};
use crate::error::CommandError;
use crate::operator::{current_epoch, protocol_deployment};
use crate::output::{emit, SubmitOutcome};
use crate::proofs::{newest_finalized, oracle_proofs, proof_to_act_on, ChainStatus, ProofKind};
use crate::tx;
use anyhow::{anyhow, bail};
use backhaul_client::{BuyerIdentity, ClientConfig, Fanout};
use backhaul_core::price::credits_for_tokens;
use backhaul_sdk::state::{CreditAccount, PriceFeed};
use backhaul_sdk::{ix, purchase_epoch, Deployment};
use clap::{Args, Subcommand};
use serde::Serialize;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;
use std::process::ExitCode;

/// The slippage bound when neither `--max-slippage-bps` nor `--min-credits` is given.
pub const DEFAULT_MAX_SLIPPAGE_BPS: u16 = 100;

#[derive(Subcommand, Debug)]
pub enum FirmCommand {
    /// Burn tokens for usage credits at the oracles' posted price, with a slippage bound.
    Buy(BuyArgs),
    /// Show credits (balance, issued, settled, unpaid) and usage not yet settled.
    Balance(BuyerArg),
    /// Settle a buyer's proven usage against its credits (anyone may send it).
    Settle(BuyerArg),
    /// Authorize a client key to spend your credits (signed by --keypair, sent to every --oracle).
    Grant(GrantCommandArgs),
    /// Revoke a client key (a newer grant that has already expired).
    Revoke(RevokeArgs),
    /// Run a local SOCKS5 / HTTP CONNECT proxy that sends each connection through a Backhaul
    /// node, signing receipts with the client key. Runs until SIGTERM or Ctrl-C.
    Gateway(crate::gateway::GatewayArgs),
}

/// `firm grant`'s command line: the grant, and where to write it for a gateway.
#[derive(Args, Debug, Clone)]
pub struct GrantCommandArgs {
    #[command(flatten)]
    pub grant: GrantArgs,
    /// Also write the signed grant to this file (JSON), for `backhaul firm gateway --grant-file`.
    #[arg(long, value_name = "FILE")]
    pub write_grant: Option<std::path::PathBuf>,
}

/// `firm buy`.
#[derive(Args, Debug, Clone, Default)]
pub struct BuyArgs {
    /// Tokens to burn, in whole tokens with decimals (e.g. 12.5).
    #[arg(long)]
    pub tokens: String,
    /// Refuse if the credits received fall more than this many basis points below the quote
    /// (or below --expected-price). Default: 100 (1%).
    #[arg(long, conflicts_with = "min_credits")]
    pub max_slippage_bps: Option<u16>,
    /// Refuse if fewer credits than this would be received.
    #[arg(long)]
    pub min_credits: Option<u64>,
    /// The price (credits per token) the slippage bound is measured from. Default: the price
    /// posted on-chain now.
    #[arg(long, conflicts_with = "min_credits")]
    pub expected_price: Option<u64>,
    /// Who receives the credits. Default: the signer.
    #[arg(long)]
    pub beneficiary: Option<String>,
}

/// An optional buyer (default: the --keypair's public key).
#[derive(Args, Debug, Clone, Default)]
pub struct BuyerArg {
    /// The buyer. Default: the --keypair's public key.
    #[arg(long)]
    pub buyer: Option<String>,
}

impl BuyerArg {
    fn key(&self) -> anyhow::Result<Option<Pubkey>> {
        self.buyer
            .as_deref()
            .map(|s| parse_pubkey("--buyer", s))
            .transpose()
    }
}

/// `firm grant`.
#[derive(Args, Debug, Clone)]
pub struct GrantArgs {
    /// The client key to authorize (base58).
    pub client: String,
    /// Usage in epochs starting at or after this time (unix seconds) is not covered. Default:
    /// never expires.
    #[arg(long, conflicts_with = "expires_in_days")]
    pub expires_at: Option<i64>,
    /// Expire this many days from now (by the chain's clock).
    #[arg(long)]
    pub expires_in_days: Option<u64>,
    /// The most credits the client may consume per epoch (0: only your credits limit it).
    #[arg(long, default_value_t = 0)]
    pub credit_limit: u64,
    /// The first epoch the grant applies to. Default: the epoch the chain's clock is in.
    #[arg(long)]
    pub epoch: Option<u64>,
    /// When the grant is signed (unix seconds); a later one replaces earlier ones. Default: now.
    #[arg(long)]
    pub issued_at: Option<i64>,
}

/// `firm revoke`.
#[derive(Args, Debug, Clone)]
pub struct RevokeArgs {
    /// The client key to revoke (base58).
    pub client: String,
    /// The first epoch the revocation applies to. Default: the epoch the chain's clock is in.
    #[arg(long)]
    pub epoch: Option<u64>,
    /// When the revocation is signed (unix seconds); it must be later than the grant it
    /// replaces. Default: now.
    #[arg(long)]
    pub issued_at: Option<i64>,
}

/// A token account's balance (0 when it does not exist).
pub async fn token_balance(ctx: &Context, account: &Pubkey) -> anyhow::Result<u64> {
    Ok(match ctx.raw_account(account).await? {
        Some(a) => {
            spl_token_interface::state::Account::unpack(&a.data)
                .map_err(|e| anyhow!("{account} is not a token account: {e}"))?
                .amount
        }
        None => 0,
    })
}

/// What `buy` did.
#[derive(Clone, Debug, Serialize)]
pub struct BuyOutcome {
    pub buyer: String,
    pub beneficiary: String,
    /// Burned, base units.
    pub tokens: u64,
    pub tokens_display: String,
    /// The posted price used (credits per whole token).
    pub price: u64,
    /// Credits the quote promised.
    pub quoted_credits: u64,
    /// The bound sent with the transaction.
    pub min_credits: u64,
    /// Credits received.
    pub credits: u64,
    /// The beneficiary's balance afterwards.
    pub balance: u64,
    pub signature: String,
}

/// Burns `args.tokens` of the signer's tokens for credits, refusing before sending when the
/// price is stale or the slippage bound cannot be met.
pub async fn buy(ctx: &Context, args: &BuyArgs) -> anyhow::Result<BuyOutcome> {
    let payer = ctx.signer()?;
    let (d, c) = ctx.deployment_config().await?;
    let beneficiary = match &args.beneficiary {
        Some(b) => parse_pubkey("--beneficiary", b)?,
        None => payer.pubkey(),
    };
    let amount = parse_tokens(&args.tokens, c.decimals)?;
    if amount == 0 {
        bail!("--tokens must be more than zero");
    }
    let now = ctx.chain_time().await?;
    if c.is_paused(now) {
        return Err(CommandError::Paused {
            what: "buying credits".into(),
            until: c.paused_until,
        }
        .into());
    }
    let feed: PriceFeed = ctx.account(&d.price_feed()).await?.ok_or_else(|| {
        anyhow!(
            "the deployment has no price feed account {}",
            d.price_feed()
        )
    })?;
    if feed.credits_per_token == 0 {
        bail!(
            "no price has been posted yet: wait for the oracles to agree on one; nothing was sent"
        );
    }
    let age = now.saturating_sub(feed.posted_at);
    if u64::try_from(age).unwrap_or(0) > c.economics.price_max_age_secs {
        return Err(CommandError::StalePrice {
            age_secs: age,
            max_age_secs: c.economics.price_max_age_secs,
        }
        .into());
    }
    let price = feed.credits_per_token;
    let quoted = credits_for_tokens(amount, price, c.decimals)
        .map_err(|e| anyhow!("the quote overflows: {e:?}; buy fewer tokens at once"))?;
    let min_credits = match args.min_credits {
        Some(m) => m,
        None => {
            let bps = args.max_slippage_bps.unwrap_or(DEFAULT_MAX_SLIPPAGE_BPS);
            if bps > 10_000 {
                bail!("--max-slippage-bps {bps} is more than 10000 (100%)");
            }
            let reference = match args.expected_price {
                Some(p) => credits_for_tokens(amount, p, c.decimals)
                    .map_err(|e| anyhow!("the expected price overflows: {e:?}"))?,
                None => quoted,
            };
            let keep = u128::from(10_000u16.saturating_sub(bps));
            u64::try_from(u128::from(reference).saturating_mul(keep) / 10_000).unwrap_or(u64::MAX)
        }
    };
    if quoted < min_credits || quoted == 0 {
        return Err(CommandError::Slippage {
            price,
            tokens: format_tokens(amount, c.decimals),
            credits: quoted,
            min_credits,
        }
        .into());
    }
    let payer_tokens = d.ata(&payer.pubkey());
    let held = token_balance(ctx, &payer_tokens).await?;
    if held < amount {
        bail!(
            "{} holds {} tokens in {payer_tokens}, fewer than the {} to burn; nothing was sent",
            payer.pubkey(),
            format_tokens(held, c.decimals),
            format_tokens(amount, c.decimals)
        );
    }
    let before: Option<CreditAccount> = ctx.account(&d.credits(&beneficiary)).await?;
    // The epoch of the chain's clock, which the program checks; if the purchase lands after an
    // epoch boundary it is refused (`WrongEpoch`) and the command can simply be run again.
    let epoch = purchase_epoch(&c, now);
    let sig = tx::send(
        ctx,
        "buy credits",
        &[ix::buy_credits(
            &d,
            &payer.pubkey(),
            &payer_tokens,
            amount,
            min_credits,
            beneficiary,
            epoch,
        )],
        &[],
    )
    .await?;
    let after = credit_account_after(ctx, &d, &beneficiary, format!("the purchase {sig}")).await?;
    let credits = after.issued.saturating_sub(before.map_or(0, |b| b.issued));
    Ok(BuyOutcome {
        buyer: payer.pubkey().to_string(),
        beneficiary: beneficiary.to_string(),
        tokens: amount,
        tokens_display: format_tokens(amount, c.decimals),
        price,
        quoted_credits: quoted,
        min_credits,
        credits,
        balance: after.balance,
        signature: sig.to_string(),
    })
}

/// A buyer's credits and unsettled usage.
#[derive(Clone, Debug, Serialize)]
pub struct BalanceView {
    pub buyer: String,
    /// Whether the buyer has a credit account.
    pub exists: bool,
    pub balance: u64,
    pub issued: u64,
    pub settled: u64,
    pub unpaid: u64,
    /// Cumulative consumption settled so far.
    pub consumed_settled: u64,
    pub last_settled_epoch: Option<u64>,
    pub tokens_burned: u64,
    /// The oracles' newest usage proof (checked against the chain), if any.
    pub usage_epoch: Option<u64>,
    pub usage_status: Option<ChainStatus>,
    pub usage_verified: bool,
    pub usage_cumulative: Option<u64>,
    /// Proven usage not yet settled: the newest proof's cumulative minus what is settled.
    pub unsettled: Option<u64>,
    /// Set when the oracles could not be asked (none given, or none answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_error: Option<String>,
}

/// The buyer's credits, and its usage not yet settled (needs `--oracle`).
pub async fn balance(ctx: &Context, buyer: Option<Pubkey>) -> anyhow::Result<BalanceView> {
    let buyer = match buyer {
        Some(b) => b,
        None => ctx.signer_pubkey()?,
    };
    let (d, _) = ctx.deployment_config().await?;
    let acc: Option<CreditAccount> = ctx.account(&d.credits(&buyer)).await?;
    let settled_cum = acc.as_ref().map_or(0, |a| a.consumed_cumulative);
    let mut view = BalanceView {
        buyer: buyer.to_string(),
        exists: acc.is_some(),
        balance: acc.as_ref().map_or(0, |a| a.balance),
        issued: acc.as_ref().map_or(0, |a| a.issued),
        settled: acc.as_ref().map_or(0, |a| a.settled),
        unpaid: acc.as_ref().map_or(0, |a| a.unpaid),
        consumed_settled: settled_cum,
        last_settled_epoch: acc
            .as_ref()
            .filter(|a| a.consumed_cumulative > 0)
            .map(|a| a.last_settled_epoch),
        tokens_burned: acc.as_ref().map_or(0, |a| a.tokens_burned),
        usage_epoch: None,
        usage_status: None,
        usage_verified: false,
        usage_cumulative: None,
        unsettled: None,
        usage_error: None,
    };
    if ctx.oracles.is_empty() {
        view.usage_error =
            Some("no --oracle given: unsettled usage needs the oracles' proofs".into());
        return Ok(view);
    }
    match oracle_proofs(ctx, &d, ProofKind::Usage, &buyer).await {
        Ok(proofs) => match proofs.first() {
            Some(p) => {
                view.usage_epoch = Some(p.epoch);
                view.usage_status = Some(p.status);
                view.usage_verified = p.verified;
                view.usage_cumulative = Some(p.cumulative);
                view.unsettled = Some(p.cumulative.saturating_sub(settled_cum));
            }
            None => view.unsettled = Some(0),
        },
        Err(e) => view.usage_error = Some(format!("{e:#}")),
    }
    Ok(view)
}

/// The credit account of `buyer` after a transaction (`after` names it) that must have
/// created or kept it.
async fn credit_account_after(
    ctx: &Context,
    d: &Deployment,
    buyer: &Pubkey,
    after: String,
) -> anyhow::Result<CreditAccount> {
    ctx.account(&d.credits(buyer))
        .await?
        .ok_or_else(|| anyhow!("the credit account is missing after {after}"))
}

/// What `settle` did.
#[derive(Clone, Debug, Serialize)]
pub struct SettleOutcome {
    pub buyer: String,
    pub epoch: u64,
    /// The proof's cumulative consumption.
    pub consumed_cumulative: u64,
    /// Debited from the balance by this settlement.
    pub debited: u64,
    /// Consumed beyond the balance (recorded, not debited).
    pub unpaid: u64,
    /// The balance afterwards.
    pub balance: u64,
    pub signature: String,
    /// Where the proof came from: an oracle, or an epoch's dataset.
    pub source: String,
}

/// Settles the buyer's newest finalized usage against its credits (the signer pays the fee).
pub async fn settle(ctx: &Context, buyer: Option<Pubkey>) -> anyhow::Result<SettleOutcome> {
    let payer = ctx.signer()?;
    let buyer = buyer.unwrap_or(payer.pubkey());
    let (d, c) = ctx.deployment_config().await?;
    let proof = proof_to_act_on(
        ctx,
        &d,
        &c,
        ProofKind::Usage,
        &buyer,
        "settling",
        "fetching the newest finalized usage proof",
    )
    .await?;
    let Some(proof) = proof else {
        bail!(
            "nothing to settle: no finalized epoch records usage for buyer {buyer} (newest \
             finalized epoch: {})",
            newest_finalized(c.next_epoch)
        );
    };
    let before: Option<CreditAccount> = ctx.account(&d.credits(&buyer)).await?;
    let settled = before.as_ref().map_or(0, |a| a.consumed_cumulative);
    if proof.cumulative <= settled {
        return Err(CommandError::NothingToSettle {
            buyer: buyer.to_string(),
            epoch: proof.epoch,
            cumulative: proof.cumulative,
        }
        .into());
    }
    let table = tx::configured_lookup_table(ctx).await?;
    let direct = ix::settle_usage(
        &d,
        &payer.pubkey(),
        proof.epoch,
        &buyer,
        proof.cumulative,
        proof.index,
        &proof.proof,
    );
    // A proof too deep for one transaction goes through a proof buffer.
    let id = crate::buffer::id_for(&[b"settle", buyer.as_ref(), &proof.epoch.to_le_bytes()]);
    let payload = backhaul_sdk::buffer::leaf_proof(proof.index, &proof.proof);
    let from_buffer = ix::settle_from_buffer(
        &d,
        &payer.pubkey(),
        proof.epoch,
        &buyer,
        proof.cumulative,
        id,
    );
    let sig = crate::buffer::send_either(
        ctx,
        &d,
        "settle usage",
        direct,
        (id, &payload, from_buffer),
        table.as_ref(),
    )
    .await?;
    let after = credit_account_after(ctx, &d, &buyer, format!("settlement {sig}")).await?;
    Ok(SettleOutcome {
        buyer: buyer.to_string(),
        epoch: proof.epoch,
        consumed_cumulative: proof.cumulative,
        debited: after
            .settled
            .saturating_sub(before.as_ref().map_or(0, |b| b.settled)),
        unpaid: after
            .unpaid
            .saturating_sub(before.as_ref().map_or(0, |b| b.unpaid)),
        balance: after.balance,
        signature: sig.to_string(),
        source: proof.source,
    })
}

/// What a grant and a revocation start from: the client, the oracles, the buyer (the signer)
/// and the epoch from which it applies.
struct GrantStart {
    client: Pubkey,
    urls: Vec<String>,
    buyer: Pubkey,
    epoch: u64,
    identity: BuyerIdentity,
}

impl GrantStart {
    /// Reads `--client`, the oracles, the signer and the deployment; the epoch is `epoch` or,
    /// when not given, the chain's current one.
    async fn new(ctx: &Context, client: &str, epoch: Option<u64>) -> anyhow::Result<GrantStart> {
        let client = parse_pubkey("client", client)?;
        let urls = ctx.oracle_urls()?.to_vec();
        let buyer = ctx.signer()?;
        let (d, c) = ctx.deployment_config().await?;
        let epoch = match epoch {
            Some(e) => e,
            None => current_epoch(ctx, &c).await?,
        };
        // The oracles keep grants only of buyers with a credit account (a grant costs nothing
        // to sign; a credit account costs a purchase).
        let account: Option<CreditAccount> = ctx.account(&d.credits(&buyer.pubkey())).await?;
        if account.is_none() {
            bail!(
                "{} has no credit account yet, and the oracles keep grants only of buyers with one: buy credits first (`backhaul firm buy --tokens <N>`), then grant",
                buyer.pubkey()
            );
        }
        Ok(GrantStart {
            client,
            urls,
            buyer: buyer.pubkey(),
            epoch,
            identity: BuyerIdentity::new(protocol_deployment(&d), signing_key(buyer)),
        })
    }
}

/// Signs a grant of `args.client` with the signer (the buyer) and sends it to every oracle.
pub async fn grant(ctx: &Context, args: &GrantArgs) -> anyhow::Result<SubmitOutcome> {
    Ok(grant_signed(ctx, args).await?.1)
}

/// [`grant`], and the signed grant itself (what a gateway presents to nodes).
pub async fn grant_signed(
    ctx: &Context,
    args: &GrantArgs,
) -> anyhow::Result<(backhaul_protocol::SignedGrant, SubmitOutcome)> {
    let GrantStart {
        client,
        urls,
        buyer,
        epoch,
        identity,
    } = GrantStart::new(ctx, &args.client, args.epoch).await?;
    let expires_at = match (args.expires_at, args.expires_in_days) {
        (Some(t), _) => t,
        (None, Some(days)) => {
            let secs = days
                .checked_mul(86_400)
                .and_then(|s| i64::try_from(s).ok())
                .ok_or_else(|| anyhow!("--expires-in-days {days} is too large"))?;
            ctx.chain_time().await?.saturating_add(secs)
        }
        (None, None) => i64::MAX,
    };
    let issued_at = args.issued_at.unwrap_or_else(wall_time);
    let signed = identity.grant(
        client.to_bytes(),
        epoch,
        issued_at,
        expires_at,
        args.credit_limit,
    );
    let expiry = if expires_at == i64::MAX {
        "no expiry".to_string()
    } else {
        format!("expires at {expires_at}")
    };
    let limit = if args.credit_limit == 0 {
        "no per-epoch limit".to_string()
    } else {
        format!("at most {} credits per epoch", args.credit_limit)
    };
    let outcome = submit_grant(
        ctx,
        &urls,
        "grant",
        format!(
            "client {client} may spend {buyer}'s credits from epoch {epoch} ({expiry}, {limit})"
        ),
        signed,
    )
    .await?;
    Ok((signed, outcome))
}

/// Signs a revocation of `args.client` and sends it to every oracle.
pub async fn revoke(ctx: &Context, args: &RevokeArgs) -> anyhow::Result<SubmitOutcome> {
    let GrantStart {
        client,
        urls,
        buyer,
        epoch,
        identity,
    } = GrantStart::new(ctx, &args.client, args.epoch).await?;
    let issued_at = args.issued_at.unwrap_or_else(wall_time);
    let signed = identity.revoke(client.to_bytes(), epoch, issued_at);
    submit_grant(
        ctx,
        &urls,
        "revoke",
        format!("client {client} may no longer spend {buyer}'s credits from epoch {epoch}"),
        signed,
    )
    .await
}

async fn submit_grant(
    ctx: &Context,
    urls: &[String],
    action: &str,
    message: String,
    signed: backhaul_protocol::SignedGrant,
) -> anyhow::Result<SubmitOutcome> {
    let fanout =
        Fanout::from_urls(urls, ClientConfig::default()).map_err(|e| anyhow!("--oracle: {e}"))?;
    let spinner = ctx.spinner(format!(
        "submitting the {action} to {} oracle(s)",
        urls.len()
    ));
    let report = fanout.submit_grants(&[signed]).await;
    spinner.finish_and_clear();
    Ok(SubmitOutcome::from_report(action, message, &report))
}

pub async fn run(ctx: &Context, command: FirmCommand) -> anyhow::Result<ExitCode> {
    let out = ctx.output;
    match command {
        FirmCommand::Buy(args) => {
            let o = buy(ctx, &args).await?;
            emit(out, &o, |o| {
                println!(
                    "bought {} credits for {} tokens at {} credits per token (bound: at least {})",
                    o.credits, o.tokens_display, o.price, o.min_credits
                );
                println!(
                    "  beneficiary {} now holds {} credits",
                    o.beneficiary, o.balance
                );
                println!("  signature   {}", o.signature);
            });
        }
        FirmCommand::Balance(a) => {
            let v = balance(ctx, a.key()?).await?;
            emit(out, &v, print_balance);
        }
        FirmCommand::Settle(a) => {
            let o = settle(ctx, a.key()?).await?;
            emit(out, &o, |o| {
                println!(
                    "settled buyer {}'s usage through epoch {} (cumulative {} credits): {} debited, {} unpaid; balance {}",
                    o.buyer, o.epoch, o.consumed_cumulative, o.debited, o.unpaid, o.balance
                );
                println!("signature {}", o.signature);
            });
        }
        FirmCommand::Grant(args) => {
            let (signed, o) = grant_signed(ctx, &args.grant).await?;
            if let Some(path) = &args.write_grant {
                crate::gateway::write_grant_file(path, &signed)?;
                tracing::info!(path = %path.display(), "grant written");
            }
            emit(out, &o, SubmitOutcome::print);
            return Ok(o.exit_code());
        }
        FirmCommand::Gateway(_) => bail!(
            "the gateway is a service: start it with `backhaul firm gateway` (crate::gateway::run)"
        ),
        FirmCommand::Revoke(args) => {
            let o = revoke(ctx, &args).await?;
            emit(out, &o, SubmitOutcome::print);
            return Ok(o.exit_code());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_balance(v: &BalanceView) {
    println!("Buyer {}", v.buyer);
    if !v.exists {
        println!("  no credits yet: buy some with `backhaul firm buy --tokens <AMOUNT>`");
    }
    println!("  balance     {} credits", v.balance);
    println!(
        "  issued      {} (for {} token base units burned)",
        v.issued, v.tokens_burned
    );
    println!("  settled     {}", v.settled);
    println!("  unpaid      {}", v.unpaid);
    match (v.unsettled, v.usage_epoch, v.usage_status) {
        (Some(u), Some(e), Some(s)) => println!(
            "  unsettled   {u} credits (usage through epoch {e}, {}{})",
            s.describe(),
            if v.usage_verified {
                ", verified against the chain"
            } else {
                ""
            }
        ),
        (Some(u), _, _) => println!("  unsettled   {u} (no usage recorded by the oracles)"),
        _ => {}
    }
    if let Some(e) = &v.usage_error {
        println!("  unsettled   unknown: {e}");
    }
}

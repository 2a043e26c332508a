//! Node operators: bind a node key to the operator wallet, see pending rewards, claim them.

use crate::amount::format_tokens;
use crate::context::{parse_pubkey, read_keypair, signing_key, wall_time, Context};
use crate::error::CommandError;
use crate::output::{emit, SubmitOutcome};
use crate::proofs::{
    finalized_from, newest_finalized, oracle_proofs, proof_to_act_on, ChainStatus, ProofKind,
};
use crate::tx;
use anyhow::Context as _;
use backhaul_client::{ClientConfig, Fanout, NodeIdentity};
use backhaul_core::epoch::epoch_at;
use backhaul_sdk::state::{Config, OperatorClaim};
use backhaul_sdk::{ix, Deployment};
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Bind a node key to your operator wallet (--keypair) at every --oracle: the node's
    /// rewards go to the wallet.
    Bind(BindArgs),
    /// Show pending rewards: the oracles' newest proof, checked against the chain, minus what
    /// was already claimed.
    Rewards(OperatorArg),
    /// Claim everything the newest finalized epoch pays (creates the token account if needed).
    Claim(OperatorArg),
}

/// `operator bind`.
#[derive(Args, Debug, Clone)]
pub struct BindArgs {
    /// The node's key file (a Solana CLI keypair file; the node signs receipts with it).
    #[arg(long)]
    pub node_keypair: PathBuf,
    /// The first epoch the binding applies to. Default: the epoch the chain's clock is in.
    #[arg(long)]
    pub epoch: Option<u64>,
}

/// An optional operator (default: the --keypair's public key).
#[derive(Args, Debug, Clone, Default)]
pub struct OperatorArg {
    /// The operator wallet. Default: the --keypair's public key.
    #[arg(long)]
    pub operator: Option<String>,
}

impl OperatorArg {
    fn key(&self) -> anyhow::Result<Option<Pubkey>> {
        self.operator
            .as_deref()
            .map(|s| parse_pubkey("--operator", s))
            .transpose()
    }
}

/// The deployment as the oracles' signed messages name it.
pub fn protocol_deployment(d: &Deployment) -> backhaul_protocol::Deployment {
    backhaul_protocol::Deployment {
        program_id: backhaul_sdk::PROGRAM_ID.to_bytes(),
        config: d.config.to_bytes(),
    }
}

/// The epoch the chain's clock is in.
pub async fn current_epoch(ctx: &Context, c: &Config) -> anyhow::Result<u64> {
    let now = ctx.chain_time().await?;
    Ok(epoch_at(c.genesis_ts, c.epoch_length_secs, now).unwrap_or(0))
}

/// Binds the node in `args.node_keypair` to the signer (the operator wallet) at every oracle.
pub async fn bind(ctx: &Context, args: &BindArgs) -> anyhow::Result<SubmitOutcome> {
    let node = read_keypair(&args.node_keypair)
        .with_context(|| "reading the node's key (--node-keypair)")?;
    bind_node(ctx, &signing_key(&node), args.epoch, None).await
}

/// [`bind`] with the node's signing key in memory.
/// Binds `node` to the context's signer from `epoch` (default: the current one), signed at
/// `issued_at` (default: now; a later binding of the same node replaces an earlier one).
pub async fn bind_node(
    ctx: &Context,
    node: &SigningKey,
    epoch: Option<u64>,
    issued_at: Option<i64>,
) -> anyhow::Result<SubmitOutcome> {
    let urls = ctx.oracle_urls()?.to_vec();
    let operator = ctx.signer()?;
    let (d, c) = ctx.deployment_config().await?;
    let epoch = match epoch {
        Some(e) => e,
        None => current_epoch(ctx, &c).await?,
    };
    let identity = NodeIdentity::new(
        protocol_deployment(&d),
        node.clone(),
        operator.pubkey().to_bytes(),
    );
    let binding = identity
        .sign_binding(
            epoch,
            issued_at.unwrap_or_else(wall_time),
            &signing_key(operator),
        )
        .map_err(|e| anyhow::anyhow!("cannot sign the binding: {e}"))?;
    let fanout = Fanout::from_urls(&urls, ClientConfig::default())
        .map_err(|e| anyhow::anyhow!("--oracle: {e}"))?;
    let spinner = ctx.spinner(format!(
        "submitting the binding to {} oracle(s)",
        urls.len()
    ));
    let report = fanout.submit_bindings(&[binding]).await;
    spinner.finish_and_clear();
    Ok(SubmitOutcome::from_report(
        "bind",
        format!(
            "node {} -> operator {} from epoch {epoch}",
            Pubkey::new_from_array(identity.key()),
            operator.pubkey()
        ),
        &report,
    ))
}

/// Pending rewards of one operator.
#[derive(Clone, Debug, Serialize)]
pub struct RewardsView {
    pub operator: String,
    pub decimals: u8,
    /// The newest proof any oracle serves, checked against the chain.
    pub latest: Option<LatestReward>,
    /// What the operator has claimed so far (base units).
    pub claimed: u64,
    /// The epoch of its last claim.
    pub last_claim_epoch: Option<u64>,
    /// What a claim would pay now (newest finalized, verified proof minus claimed).
    pub claimable_now: u64,
    /// The epoch that claim would use.
    pub claimable_epoch: Option<u64>,
    /// Earned in the newest epoch but not claimable yet (not finalized).
    pub pending_finalization: u64,
    /// Every epoch before this one is finalized on-chain.
    pub next_epoch: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatestReward {
    pub epoch: u64,
    pub cumulative: u64,
    pub status: ChainStatus,
    pub verified: bool,
    pub finalizable_at: Option<i64>,
    pub source: String,
}

/// The operator's rewards: newest proof vs `OperatorClaim.claimed`.
pub async fn rewards(ctx: &Context, operator: Option<Pubkey>) -> anyhow::Result<RewardsView> {
    let operator = match operator {
        Some(o) => o,
        None => ctx.signer_pubkey()?,
    };
    let (d, c) = ctx.deployment_config().await?;
    let claim: Option<OperatorClaim> = ctx.account(&d.operator_claim(&operator)).await?;
    let claimed = claim.as_ref().map_or(0, |c| c.claimed);
    let spinner = ctx.spinner("fetching proofs from the oracles");
    let found = async {
        let proofs = oracle_proofs(ctx, &d, ProofKind::Reward, &operator).await?;
        let final_proof = finalized_from(
            ctx,
            &d,
            ProofKind::Reward,
            &operator,
            c.next_epoch,
            proofs.clone(),
        )
        .await?;
        anyhow::Ok((proofs, final_proof))
    }
    .await;
    spinner.finish_and_clear();
    let (proofs, final_proof) = found?;
    let latest = proofs.first().cloned();
    let claimable_now = final_proof
        .as_ref()
        .map_or(0, |p| p.cumulative.saturating_sub(claimed));
    let pending_finalization = latest
        .as_ref()
        .filter(|l| l.status != ChainStatus::Finalized)
        .map_or(0, |l| {
            l.cumulative.saturating_sub(
                final_proof
                    .as_ref()
                    .map_or(claimed, |p| p.cumulative.max(claimed)),
            )
        });
    Ok(RewardsView {
        operator: operator.to_string(),
        decimals: c.decimals,
        latest: latest.map(|p| LatestReward {
            epoch: p.epoch,
            cumulative: p.cumulative,
            status: p.status,
            verified: p.verified,
            finalizable_at: p.finalizable_at,
            source: p.source,
        }),
        claimed,
        last_claim_epoch: claim.map(|c| c.last_epoch),
        claimable_now,
        claimable_epoch: final_proof.map(|p| p.epoch),
        pending_finalization,
        next_epoch: c.next_epoch,
    })
}

/// What `claim` paid.
#[derive(Clone, Debug, Serialize)]
pub struct ClaimOutcome {
    pub operator: String,
    pub recipient: String,
    pub epoch: u64,
    /// The proof's cumulative amount (base units).
    pub cumulative: u64,
    /// Paid by this claim (base units).
    pub amount: u64,
    pub amount_display: String,
    pub signature: String,
    /// The recipient's balance afterwards (base units).
    pub balance: u64,
    /// Where the proof came from: an oracle, or an epoch's dataset.
    pub source: String,
}

/// Claims the operator's newest finalized reward: fetches and verifies the proof, creates the
/// operator's token account if needed and sends `claim` (the signer pays the fees), as a v0
/// transaction with the deployment's lookup table when `--lookup-table` names one.
pub async fn claim(ctx: &Context, operator: Option<Pubkey>) -> anyhow::Result<ClaimOutcome> {
    let payer = ctx.signer()?;
    let operator = operator.unwrap_or(payer.pubkey());
    let (d, c) = ctx.deployment_config().await?;
    let proof = proof_to_act_on(
        ctx,
        &d,
        &c,
        ProofKind::Reward,
        &operator,
        "claiming",
        "fetching the newest finalized proof",
    )
    .await?;
    let Some(proof) = proof else {
        anyhow::bail!(
            "nothing to claim: no finalized epoch has a reward for operator {operator} (newest \
             finalized epoch: {}). Bind your node (`backhaul operator bind`) and wait for an \
             epoch with its traffic to be finalized",
            newest_finalized(c.next_epoch)
        );
    };
    let record: Option<OperatorClaim> = ctx.account(&d.operator_claim(&operator)).await?;
    let claimed = record.as_ref().map_or(0, |r| r.claimed);
    if proof.cumulative <= claimed {
        return Err(CommandError::NothingToClaim {
            operator: operator.to_string(),
            epoch: proof.epoch,
            cumulative: format_tokens(proof.cumulative, c.decimals),
            claimed: format_tokens(claimed, c.decimals),
        }
        .into());
    }
    let recipient = d.ata(&operator);
    // The token account is created in a transaction of its own: with it, a claim with a deep
    // proof would not fit one transaction.
    if ctx.raw_account(&recipient).await?.is_none() {
        let create = spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &payer.pubkey(),
            &operator,
            &d.mint,
            &spl_token_interface::ID,
        );
        tx::send(ctx, "create the operator's token account", &[create], &[]).await?;
    }
    let claim = ix::claim(
        &d,
        &payer.pubkey(),
        proof.epoch,
        &operator,
        &recipient,
        proof.cumulative,
        proof.index,
        &proof.proof,
    );
    let table = tx::configured_lookup_table(ctx).await?;
    // A proof too deep for one transaction goes through a proof buffer.
    let id = crate::buffer::id_for(&[b"claim", operator.as_ref(), &proof.epoch.to_le_bytes()]);
    let payload = backhaul_sdk::buffer::leaf_proof(proof.index, &proof.proof);
    let from_buffer = ix::claim_from_buffer(
        &d,
        &payer.pubkey(),
        proof.epoch,
        &operator,
        &recipient,
        proof.cumulative,
        id,
    );
    let sig = crate::buffer::send_either(
        ctx,
        &d,
        "claim",
        claim,
        (id, &payload, from_buffer),
        table.as_ref(),
    )
    .await?;
    let amount = proof.cumulative.saturating_sub(claimed);
    let balance = crate::firm::token_balance(ctx, &recipient).await?;
    Ok(ClaimOutcome {
        operator: operator.to_string(),
        recipient: recipient.to_string(),
        epoch: proof.epoch,
        cumulative: proof.cumulative,
        amount,
        amount_display: format_tokens(amount, c.decimals),
        signature: sig.to_string(),
        balance,
        source: proof.source,
    })
}

pub async fn run(ctx: &Context, command: OperatorCommand) -> anyhow::Result<ExitCode> {
    let out = ctx.output;
    match command {
        OperatorCommand::Bind(args) => {
            let o = bind(ctx, &args).await?;
            emit(out, &o, SubmitOutcome::print);
            Ok(o.exit_code())
        }
        OperatorCommand::Rewards(a) => {
            let v = rewards(ctx, a.key()?).await?;
            emit(out, &v, print_rewards);
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Claim(a) => {
            let o = claim(ctx, a.key()?).await?;
            emit(out, &o, |o| {
                println!(
                    "claimed {} tokens for {} (epoch {}, cumulative {}) into {}",
                    o.amount_display, o.operator, o.epoch, o.cumulative, o.recipient
                );
                println!("signature {}", o.signature);
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_rewards(v: &RewardsView) {
    let t = |a: u64| format_tokens(a, v.decimals);
    println!("Operator {}", v.operator);
    match &v.latest {
        Some(l) => println!(
            "  newest proof      epoch {}: {} tokens earned in all ({}{}), from {}",
            l.epoch,
            t(l.cumulative),
            l.status.describe(),
            if l.verified {
                ", verified against the chain"
            } else {
                ", not yet verifiable: no root on-chain"
            },
            l.source
        ),
        None => println!("  newest proof      none: no oracle has a reward for this operator yet"),
    }
    if let Some(l) = &v.latest {
        if let (ChainStatus::Proposed, Some(at)) = (l.status, l.finalizable_at) {
            println!("  finalizable at    {at} (unix seconds, chain clock)");
        }
    }
    println!("  claimed           {}", t(v.claimed));
    match v.claimable_epoch {
        Some(e) => println!("  claimable now     {} (epoch {e})", t(v.claimable_now)),
        None => println!("  claimable now     0 (no finalized reward yet)"),
    }
    if v.pending_finalization > 0 {
        println!(
            "  awaiting finality {} (claimable once its epoch is finalized)",
            t(v.pending_finalization)
        );
    }
}

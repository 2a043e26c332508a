//! Sending transactions: a compute-unit limit from a simulation (and a price), signing, sending
//! and confirming with a spinner, and program errors turned into the program's error name,
//! message and a hint.

use crate::context::Context;
use crate::error::CommandError;
use backhaul_sdk::compute;
use solana_address_lookup_table_interface::state::AddressLookupTable;
use solana_client::client_error::{ClientError, ClientErrorKind};
use solana_client::rpc_config::RpcSimulateTransactionConfig;
use solana_client::rpc_request::{RpcError, RpcResponseErrorData};
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::message::{v0, AddressLookupTableAccount, Message, VersionedMessage};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{TransactionError, VersionedTransaction};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The committed IDL: the program's error codes, names and messages.
const IDL: &str = include_str!("../../../programs/backhaul/idl/backhaul.json");

/// One of the program's errors, as the IDL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramErrorInfo {
    pub code: u32,
    pub name: String,
    pub message: String,
}

fn idl_errors() -> &'static HashMap<u32, ProgramErrorInfo> {
    static ERRORS: OnceLock<HashMap<u32, ProgramErrorInfo>> = OnceLock::new();
    ERRORS.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Idl {
            #[serde(default)]
            errors: Vec<IdlError>,
        }
        #[derive(serde::Deserialize)]
        struct IdlError {
            code: u32,
            name: String,
            #[serde(default)]
            msg: String,
        }
        let idl: Idl = serde_json::from_str(IDL).unwrap_or(Idl { errors: vec![] });
        idl.errors
            .into_iter()
            .map(|e| {
                (
                    e.code,
                    ProgramErrorInfo {
                        code: e.code,
                        name: e.name,
                        message: e.msg,
                    },
                )
            })
            .collect()
    })
}

/// The program's error with custom code `code`, if the IDL has it.
pub fn program_error(code: u32) -> Option<&'static ProgramErrorInfo> {
    idl_errors().get(&code)
}

/// What to do next after the program refused with `name`.
pub fn hint_for(name: &str) -> Option<&'static str> {
    Some(match name {
        "NotUpgradeAuthority" => "initialize with the program's upgrade authority as --keypair",
        "NotAdmin" => {
            "sign with the admin's keypair (--keypair); `backhaul admin show` names the admin"
        }
        "NotPendingAdmin" => {
            "sign with the proposed admin's keypair; `backhaul admin show` names it"
        }
        "NoPendingAdmin" => "the admin must first run `backhaul admin propose-admin <KEY>`",
        "NotGuardian" => {
            "sign with a guardian's keypair (--keypair); `backhaul guardian show` lists the \
             guardians"
        }
        "NotAdminOrGuardian" => {
            "sign with the admin's or a guardian's keypair; `backhaul admin show` names them"
        }
        "Paused" => {
            "the deployment is paused: wait for the pause to expire (paused until, in `backhaul \
             admin show`) or for the admin to run `backhaul admin unpause`"
        }
        "NotPaused" => "the deployment is not paused: there is nothing to unpause",
        "PauseCoolingDown" => {
            "a pause ended less than a day ago: wait until the time `backhaul guardian show` \
             gives as \"pause available\""
        }
        "InvalidGuardianSet" => "give 1 to 4 distinct, non-zero guardian keys",
        "RolesOverlap" => {
            "the admin, the guardians and the oracles must all be different keys; `backhaul \
             admin show` lists them"
        }
        "InvalidGovernanceDelay" => {
            "the governance delay must be at least one epoch plus the challenge period and at \
             most 90 days (see docs/parameters.md)"
        }
        "LifetimeCapRaised" => {
            "the lifetime cap can only go down, and not below what the schedule already minted \
             (`backhaul admin show`)"
        }
        "RaiseTooLarge" => {
            "raise in steps: one change may at most double the emission, floor, net emissions \
             cap or rate capacity, and may not slow the decay; queue the next step after this \
             one is applied"
        }
        "BudgetChangePending" => {
            "budget parameters applied earlier wait for their first epoch (`backhaul admin show` \
             gives it): run `backhaul admin apply <ID>` again once that epoch is finalized"
        }
        "WrongChange" => {
            "`backhaul admin changes` lists the queued changes and the next change id; run the \
             command again"
        }
        "ChangeNotReady" => {
            "wait until the change's executable time (`backhaul admin changes` shows it), then \
             run `backhaul admin apply <ID>` again"
        }
        "CannotCancel" => {
            "a guardian cannot cancel a guardian change that removes it: ask the admin or a \
             guardian that stays to cancel it"
        }
        "VetoWindowClosed" => {
            "the epoch's challenge period is over (or it is finalized): it can no longer be vetoed"
        }
        "NothingToVeto" => "the epoch is already vetoed: wait for the oracles' next round",
        "VetoLimitReached" => {
            "this epoch was vetoed the most times allowed (3); if the proposal is wrong, pause \
             the deployment with `backhaul guardian pause` and alert the admin"
        }
        "InvalidMint" => {
            "the mint needs the config PDA as mint authority and no freeze authority \
             (`backhaul admin init --create-mint` sets this up)"
        }
        "InvalidOracleSet" | "InvalidThreshold" => {
            "give 1 to 10 distinct oracle keys and a threshold m with n/2 < m <= n"
        }
        "InvalidEpochLength"
        | "InvalidGenesis"
        | "InvalidChallengePeriod"
        | "InvalidEmissionSchedule"
        | "InvalidRateLimit"
        | "InvalidEconomics"
        | "InvalidConsensusParams" => "see docs/parameters.md for every bound",
        "EpochNotFinalized" => "wait for the epoch to be finalized after its challenge period",
        "InvalidProof" => {
            "the proof does not match the chain's root: try another --oracle, or wait for the \
             oracles to publish the finalized epoch"
        }
        "NothingToClaim" => "everything proven so far is claimed; wait for the next epoch",
        "NothingToSettle" => "the newest usage is already settled; wait for the next epoch",
        "NoPrice" => "no price posted yet: wait for the oracles to agree on one",
        "PriceStale" => "wait for the oracles to post a fresh price",
        "SlippageExceeded" => {
            "the price moved: check it with `backhaul admin show` and retry with a wider \
             --max-slippage-bps or a lower --min-credits"
        }
        "ZeroAmount" => "give a positive amount",
        "LedgerSealed" | "WrongLedger" | "WrongEpoch" => {
            "the epoch changed while sending: run the command again"
        }
        _ => return None,
    })
}

/// Turns a failed send into an error with the program's error name, message and a hint, or
/// "cannot reach the cluster" when the endpoint is down.
/// `programs` are the program ids of the transaction's instructions, in order.
pub fn explain(ctx: &Context, what: &str, e: ClientError, programs: &[Pubkey]) -> anyhow::Error {
    let logs = preflight_logs(&e);
    if let Some(tx_err) = e.get_transaction_error() {
        return explain_transaction_error(what, &tx_err, &logs, programs).into();
    }
    match e.kind() {
        ClientErrorKind::Reqwest(_) | ClientErrorKind::Io(_) => ctx.rpc_error(e),
        _ => anyhow::anyhow!(
            "{what}: the cluster at {} refused the transaction: {e}",
            ctx.url
        ),
    }
}

fn preflight_logs(e: &ClientError) -> Vec<String> {
    match e.kind() {
        ClientErrorKind::RpcError(RpcError::RpcResponseError {
            data: RpcResponseErrorData::SendTransactionPreflightFailure(sim),
            ..
        }) => sim.logs.clone().unwrap_or_default(),
        _ => vec![],
    }
}

/// The error for a transaction that failed with `tx_err` (and the program logs, if any).
pub fn explain_transaction_error(
    what: &str,
    tx_err: &TransactionError,
    logs: &[String],
    programs: &[Pubkey],
) -> CommandError {
    let program_of = |index: u8| programs.get(usize::from(index)).copied();
    match tx_err {
        TransactionError::InstructionError(index, InstructionError::Custom(code))
            if program_of(*index) == Some(spl_token_interface::ID) =>
        {
            let (name, hint) = match code {
                1 => (
                    "InsufficientFunds",
                    "the token account holds fewer tokens than needed",
                ),
                3 => (
                    "MintMismatch",
                    "the token account is not for this deployment's mint",
                ),
                4 => ("OwnerMismatch", "the token account belongs to someone else"),
                _ => ("TokenError", "see the SPL Token program's errors"),
            };
            CommandError::Transaction {
                detail: format!("{what}: the token program refused: {name} (error {code})"),
                hint: Some(hint.into()),
            }
        }
        TransactionError::InstructionError(index, InstructionError::Custom(code))
            if program_of(*index).is_some_and(|p| p != backhaul::ID) =>
        {
            CommandError::Transaction {
                detail: format!(
                    "{what}: program {} refused with custom error {code}",
                    program_of(*index)
                        .map(|p| p.to_string())
                        .unwrap_or_default()
                ),
                hint: None,
            }
        }
        TransactionError::InstructionError(_, InstructionError::Custom(code)) => {
            // The program's own errors: the deployed program's words from its logs first, the
            // IDL's when the logs have none.
            if *code >= anchor_lang::error::ERROR_CODE_OFFSET {
                let logged = anchor_log(logs)
                    .filter(|l| l.number == Some(*code))
                    .map(|l| (l.name, l.message));
                let idl = || program_error(*code).map(|i| (i.name.clone(), i.message.clone()));
                if let Some((name, message)) = logged.or_else(idl) {
                    return CommandError::Program {
                        code: *code,
                        hint: hint_for(&name).map(str::to_string),
                        name,
                        message,
                    };
                }
            }
            // Anchor's own checks (constraints, accounts) log their name and message.
            let (name, message) = anchor_log(logs)
                .map(|l| (l.name, l.message))
                .unwrap_or_else(|| {
                    (
                        format!("Custom({code})"),
                        format!("{what} failed with custom error {code}"),
                    )
                });
            CommandError::Program {
                code: *code,
                name,
                message,
                hint: Some(
                    "an account passed to the program is not the one it expects: check --mint \
                     and the keys you gave"
                        .into(),
                ),
            }
        }
        TransactionError::InsufficientFundsForFee | TransactionError::AccountNotFound => {
            CommandError::Transaction {
                detail: format!("{what}: the fee payer has no SOL to pay the fee ({tx_err})"),
                hint: Some("fund the --keypair account with SOL".into()),
            }
        }
        TransactionError::InsufficientFundsForRent { .. } => CommandError::Transaction {
            detail: format!("{what}: {tx_err}"),
            hint: Some("fund the --keypair account with more SOL".into()),
        },
        TransactionError::BlockhashNotFound => CommandError::Transaction {
            detail: format!("{what}: the blockhash expired before the transaction landed"),
            hint: Some("run the command again".into()),
        },
        other => {
            let detail = match anchor_log(logs) {
                Some(AnchorLog { name, message, .. }) => {
                    format!("{what}: {other} ({name}: {message})")
                }
                None => format!("{what}: {other}"),
            };
            CommandError::Transaction { detail, hint: None }
        }
    }
}

/// What Anchor's `AnchorError ... Error Code: X. Error Number: N. Error Message: M.` log line
/// says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorLog {
    pub name: String,
    pub number: Option<u32>,
    pub message: String,
}

/// The first Anchor error line in `logs`.
pub fn anchor_log(logs: &[String]) -> Option<AnchorLog> {
    logs.iter().find_map(|line| {
        let code = line.split("Error Code: ").nth(1)?;
        let name = code.split('.').next()?.trim().to_string();
        let number = line
            .split("Error Number: ")
            .nth(1)
            .and_then(|n| n.split('.').next())
            .and_then(|n| n.trim().parse().ok());
        let message = line
            .split("Error Message: ")
            .nth(1)
            .map(|m| m.trim_end_matches('.').to_string())
            .unwrap_or_default();
        Some(AnchorLog {
            name,
            number,
            message,
        })
    })
}

/// `e` with `hint` in place of its hint when it is the program's error `name` (a hint that knows
/// the times or ids of this command).
pub fn rehint(e: anyhow::Error, name: &str, hint: impl FnOnce() -> String) -> anyhow::Error {
    match e.downcast::<CommandError>() {
        Ok(CommandError::Program {
            code,
            name: n,
            message,
            ..
        }) if n == name => CommandError::Program {
            code,
            name: n,
            message,
            hint: Some(hint()),
        }
        .into(),
        Ok(other) => other.into(),
        Err(e) => e,
    }
}

/// The compute-unit limit for `ixs` paid by `payer`: `--compute-unit-limit` when given, otherwise
/// what a simulation of them used plus the margin ([`backhaul_sdk::compute`]). A simulation the
/// program refuses stops here, with its error explained as a refused send would be.
pub async fn compute_unit_limit(
    ctx: &Context,
    what: &str,
    payer: &Pubkey,
    ixs: &[Instruction],
    table: Option<&AddressLookupTableAccount>,
) -> anyhow::Result<u32> {
    if let Some(limit) = ctx.compute_unit_limit {
        return Ok(limit);
    }
    let probe = compute::simulation_budget(ixs);
    let programs: Vec<Pubkey> = probe.iter().map(|ix| ix.program_id).collect();
    // Unsigned: the endpoint neither checks signatures nor the blockhash (it puts in its own).
    let message = compile(what, payer, &probe, table, Hash::default())?;
    let tx = VersionedTransaction {
        signatures: vec![
            Signature::default();
            usize::from(message.header().num_required_signatures)
        ],
        message,
    };
    let config = RpcSimulateTransactionConfig {
        sig_verify: false,
        replace_recent_blockhash: true,
        commitment: Some(ctx.rpc.commitment()),
        ..RpcSimulateTransactionConfig::default()
    };
    let sim = ctx
        .rpc
        .simulate_transaction_with_config(&tx, config)
        .await
        .map_err(|e| explain(ctx, what, e, &programs))?
        .value;
    if let Some(err) = sim.err {
        let err = TransactionError::from(err);
        tracing::debug!(what, error = %err, "the simulation failed; nothing was sent");
        let logs = sim.logs.unwrap_or_default();
        return Err(explain_transaction_error(what, &err, &logs, &programs).into());
    }
    let Some(units) = sim.units_consumed else {
        tracing::warn!(
            what,
            url = %ctx.url,
            "the cluster did not say how many compute units the simulation used; asking for the \
             most a transaction may use (pass --compute-unit-limit to set a limit)"
        );
        return Ok(compute::MAX_COMPUTE_UNIT_LIMIT);
    };
    let limit = compute::limit_from_simulation(units);
    tracing::debug!(what, units, limit, "simulated");
    Ok(limit)
}

/// Simulates `ixs` for their compute-unit limit (unless `--compute-unit-limit` fixes it), puts
/// the compute-budget instructions (the limit, and the `--with-compute-unit-price` priority fee)
/// before them, signs with the signer as fee payer and `extra` signers, sends, and waits for
/// confirmation with a spinner. `what` names the action in the spinner and in errors.
pub async fn send(
    ctx: &Context,
    what: &str,
    ixs: &[Instruction],
    extra: &[&Keypair],
) -> anyhow::Result<Signature> {
    send_with_table(ctx, what, ixs, extra, None).await
}

/// Solana's largest serialized transaction.
pub const PACKET_DATA_SIZE: usize = 1232;

/// The message of `ixs` paid by `payer`: a v0 message loading what it can from `table`, or a
/// legacy message without one.
fn compile(
    what: &str,
    payer: &Pubkey,
    ixs: &[Instruction],
    table: Option<&AddressLookupTableAccount>,
    blockhash: Hash,
) -> anyhow::Result<VersionedMessage> {
    Ok(match table {
        None => VersionedMessage::Legacy(Message::new_with_blockhash(ixs, Some(payer), &blockhash)),
        Some(t) => VersionedMessage::V0(
            v0::Message::try_compile(payer, ixs, std::slice::from_ref(t), blockhash)
                .map_err(|e| anyhow::anyhow!("{what}: cannot build the transaction: {e}"))?,
        ),
    })
}

/// The deployment's address lookup table `key` as the chain holds it (`--lookup-table`). The
/// transaction is compiled against the addresses the table really holds, which never change once
/// written, so a table holding other addresses can only leave a transaction larger, never make it
/// name other accounts.
pub async fn lookup_table(
    ctx: &Context,
    key: &Pubkey,
) -> anyhow::Result<AddressLookupTableAccount> {
    let account = ctx
        .rpc
        .get_account(key)
        .await
        .map_err(|e| ctx.rpc_error(e))?;
    if account.owner != solana_address_lookup_table_interface::program::ID {
        anyhow::bail!("--lookup-table {key} is not an address lookup table");
    }
    let table = AddressLookupTable::deserialize(&account.data)
        .map_err(|e| anyhow::anyhow!("--lookup-table {key} does not parse: {e}"))?;
    Ok(AddressLookupTableAccount {
        key: *key,
        addresses: table.addresses.to_vec(),
    })
}

/// The table given with `--lookup-table`, read from the chain, if any.
pub async fn configured_lookup_table(
    ctx: &Context,
) -> anyhow::Result<Option<AddressLookupTableAccount>> {
    match ctx.lookup_table {
        Some(key) => Ok(Some(lookup_table(ctx, &key).await?)),
        None => Ok(None),
    }
}

/// Whether `ixs`, with the compute-budget instructions [`send_with_table`] adds and signed by the
/// signer alone, fit one transaction (v0 with `table` when one is given).
pub fn fits(
    ctx: &Context,
    ixs: &[Instruction],
    table: Option<&AddressLookupTableAccount>,
) -> anyhow::Result<bool> {
    let payer = ctx.signer()?;
    let all = compute::with_budget(u32::MAX, ctx.compute_unit_price, ixs);
    let message = compile("size", &payer.pubkey(), &all, table, Hash::default())?;
    let tx = VersionedTransaction::try_new(message, &[payer])
        .map_err(|e| anyhow::anyhow!("cannot sign the transaction: {e}"))?;
    Ok(bincode::serialized_size(&tx).unwrap_or(u64::MAX) <= PACKET_DATA_SIZE as u64)
}

/// [`send`], as a v0 transaction that loads what it can from `table` when one is given.
/// Refuses, before sending, a transaction larger than Solana's 1,232 bytes.
pub async fn send_with_table(
    ctx: &Context,
    what: &str,
    ixs: &[Instruction],
    extra: &[&Keypair],
    table: Option<&AddressLookupTableAccount>,
) -> anyhow::Result<Signature> {
    let payer = ctx.signer()?;
    let spinner = ctx.spinner(format!("{what}: simulating"));
    let limit = match compute_unit_limit(ctx, what, &payer.pubkey(), ixs, table).await {
        Ok(limit) => limit,
        Err(e) => {
            spinner.finish_and_clear();
            return Err(e);
        }
    };
    let all = compute::with_budget(limit, ctx.compute_unit_price, ixs);
    spinner.set_message(format!("{what}: sending"));
    let blockhash = match ctx.rpc.get_latest_blockhash().await {
        Ok(b) => b,
        Err(e) => {
            spinner.finish_and_clear();
            return Err(ctx.rpc_error(e));
        }
    };
    let mut signers: Vec<&Keypair> = vec![payer];
    signers.extend_from_slice(extra);
    let signed = compile(what, &payer.pubkey(), &all, table, blockhash).and_then(|message| {
        VersionedTransaction::try_new(message, &signers)
            .map_err(|e| anyhow::anyhow!("{what}: cannot sign the transaction: {e}"))
    });
    let tx = match signed {
        Ok(tx) => tx,
        Err(e) => {
            spinner.finish_and_clear();
            return Err(e);
        }
    };
    let size = bincode::serialized_size(&tx).unwrap_or(u64::MAX);
    if size > PACKET_DATA_SIZE as u64 {
        spinner.finish_and_clear();
        let hint = if table.is_some() {
            "the proof is too deep for one transaction"
        } else {
            "pass the deployment's address lookup table with --lookup-table (`backhaul admin \
             lookup-table` creates one)"
        };
        anyhow::bail!(
            "{what}: the transaction is {size} bytes, more than Solana's {PACKET_DATA_SIZE}; {hint}"
        );
    }
    spinner.set_message(format!("{what}: confirming {}", tx.signatures[0]));
    let result = ctx.rpc.send_and_confirm_transaction(&tx).await;
    spinner.finish_and_clear();
    match result {
        Ok(sig) => {
            tracing::info!(%sig, what, compute_unit_limit = limit, "transaction confirmed");
            Ok(sig)
        }
        Err(e) => {
            tracing::debug!(error = %e, what, "transaction failed");
            let programs: Vec<Pubkey> = all.iter().map(|ix| ix.program_id).collect();
            Err(explain(ctx, what, e, &programs))
        }
    }
}

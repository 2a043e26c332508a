//! The JSON-RPC methods: parameter parsing and response shapes as Solana's RPC server has them
//! (the same config and response types from `solana-rpc-client-api`), answered by the bank.

use crate::bank::{self, BankHandle, BankState, Executed, Simulation, TxRecord, WarpError};
use base64::prelude::{Engine, BASE64_STANDARD};
use futures::future::{FutureExt, LocalBoxFuture};
use jsonrpc_core::{Error, ErrorCode, IoHandler, Params, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use solana_account_decoder::parse_account_data::{
    AccountAdditionalDataV3, SplTokenAdditionalDataV2,
};
use solana_account_decoder::parse_token::{get_token_account_mint, token_amount_to_ui_amount_v3};
use solana_account_decoder::{encode_ui_account, MAX_BASE58_BYTES};
use solana_rpc_client_api::config::{
    CommitmentConfig, RpcAccountInfoConfig, RpcContextConfig, RpcEncodingConfigWrapper,
    RpcProgramAccountsConfig, RpcRequestAirdropConfig, RpcSendTransactionConfig,
    RpcSignatureStatusConfig, RpcSimulateTransactionConfig, RpcTransactionConfig,
    UiAccountEncoding, UiDataSliceConfig, UiTransactionEncoding,
};
use solana_rpc_client_api::custom_error::RpcCustomError;
use solana_rpc_client_api::filter::RpcFilterType;
use solana_rpc_client_api::response::{
    OptionalContext, Response, RpcBlockhash, RpcKeyedAccount, RpcPrioritizationFee,
    RpcResponseContext, RpcSimulateTransactionResult, RpcVersionInfo, UiAccount,
    UiInnerInstructions, UiTransactionReturnData,
};
use solana_sdk::account::Account;
use solana_sdk::epoch_info::EpochInfo;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::{TransactionError, TransactionVersion, VersionedTransaction};
use solana_transaction_status_client_types::{
    EncodedConfirmedTransactionWithStatusMeta, EncodedTransaction,
    EncodedTransactionWithStatusMeta, TransactionBinaryEncoding, TransactionConfirmationStatus,
    TransactionStatus, UiCompiledInstruction, UiInstruction, UiMessage, UiRawMessage,
    UiTransaction, UiTransactionStatusMeta,
};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

type RpcResult<T> = Result<T, Error>;

/// Largest wire transaction (`PACKET_DATA_SIZE`).
const PACKET_DATA_SIZE: usize = 1232;
const MAX_BASE58_SIZE: usize = 1683;
const MAX_BASE64_SIZE: usize = 1644;
const MAX_MULTIPLE_ACCOUNTS: usize = 100;
const MAX_SIGNATURE_STATUSES: usize = 256;
const MAX_PRIORITIZATION_FEE_ACCOUNTS: usize = 128;
const MAX_FILTERS: usize = 4;
/// Slots of history `getRecentPrioritizationFees` looks at.
const PRIORITIZATION_FEE_SLOTS: u64 = 150;

/// Every method, registered on a jsonrpc-core handler (which does the JSON-RPC framing: parse
/// errors, invalid requests, unknown methods, batches and notifications, exactly as Solana's).
pub(crate) fn handler(bank: BankHandle) -> Arc<IoHandler> {
    let mut io = IoHandler::new();
    macro_rules! method {
        ($name:literal, $f:path) => {{
            let bank = bank.clone();
            io.add_method($name, move |params: Params| {
                let bank = bank.clone();
                async move {
                    let result = $f(bank, params).await;
                    if let Err(e) = &result {
                        tracing::debug!(method = $name, code = e.code.code(), message = %e.message, "rpc error");
                    }
                    result
                }
            });
        }};
    }
    method!("getLatestBlockhash", get_latest_blockhash);
    method!("isBlockhashValid", is_blockhash_valid);
    method!("sendTransaction", send_transaction);
    method!("simulateTransaction", simulate_transaction);
    method!("getSignatureStatuses", get_signature_statuses);
    method!("getTransaction", get_transaction);
    method!("getAccountInfo", get_account_info);
    method!("getMultipleAccounts", get_multiple_accounts);
    method!("getProgramAccounts", get_program_accounts);
    method!("getBalance", get_balance);
    method!("getTokenAccountBalance", get_token_account_balance);
    method!(
        "getMinimumBalanceForRentExemption",
        get_minimum_balance_for_rent_exemption
    );
    method!("requestAirdrop", request_airdrop);
    method!("getSlot", get_slot);
    method!("getBlockHeight", get_block_height);
    method!("getEpochInfo", get_epoch_info);
    method!("getGenesisHash", get_genesis_hash);
    method!("getVersion", get_version);
    method!("getHealth", get_health);
    method!(
        "getRecentPrioritizationFees",
        get_recent_prioritization_fees
    );
    method!("backhaulWarpClock", warp_clock);
    method!("backhaulExpireBlockhashes", expire_blockhashes);
    method!("backhaulSetAccount", set_account);
    Arc::new(io)
}

// ---- plumbing -------------------------------------------------------------------------------

/// Runs `f` on the bank thread.
async fn run<R, F>(bank: &BankHandle, f: F) -> RpcResult<R>
where
    R: Send + 'static,
    F: for<'a> FnOnce(&'a mut BankState) -> LocalBoxFuture<'a, RpcResult<R>> + Send + 'static,
{
    bank.call(f).await.map_err(|_| {
        internal("the bank did not answer (stopped, or the request panicked; see the log)")
    })?
}

pub(crate) fn internal(message: impl std::fmt::Display) -> Error {
    Error {
        code: ErrorCode::InternalError,
        message: format!("Internal error: {message}"),
        data: None,
    }
}

fn bank_err(e: impl std::fmt::Display) -> Error {
    internal(e)
}

fn invalid_params(message: impl Into<String>) -> Error {
    Error::invalid_params(message.into())
}

/// Positional parameters `T` (a tuple of `total` elements, the first `required` mandatory;
/// missing trailing ones are `null`).
pub(crate) fn parse<T: DeserializeOwned>(
    params: Params,
    required: usize,
    total: usize,
) -> RpcResult<T> {
    let mut values = match params {
        Params::None => Vec::new(),
        Params::Array(v) => v,
        Params::Map(_) => {
            return Err(invalid_params(
                "Invalid params: invalid type: map, expected an array of parameters.",
            ))
        }
    };
    if values.len() < required {
        return Err(invalid_params(format!(
            "Invalid params: invalid length {}, expected {required} parameter{}.",
            values.len(),
            if required == 1 { "" } else { "s" }
        )));
    }
    if values.len() > total {
        return Err(invalid_params(format!(
            "Invalid params: invalid length {}, expected at most {total} parameter{}.",
            values.len(),
            if total == 1 { "" } else { "s" }
        )));
    }
    values.resize(total, Value::Null);
    serde_json::from_value(Value::Array(values))
        .map_err(|e| invalid_params(format!("Invalid params: {e}.")))
}

pub(crate) fn no_params(params: Params) -> RpcResult<()> {
    match params {
        Params::None => Ok(()),
        Params::Array(v) if v.is_empty() => Ok(()),
        _ => Err(invalid_params(
            "Invalid parameters: No parameters were expected",
        )),
    }
}

fn verify_pubkey(s: &str) -> RpcResult<Pubkey> {
    Pubkey::from_str(s).map_err(|e| invalid_params(format!("Invalid param: {e:?}")))
}

fn verify_signature(s: &str) -> RpcResult<Signature> {
    Signature::from_str(s).map_err(|e| invalid_params(format!("Invalid param: {e:?}")))
}

fn verify_hash(s: &str) -> RpcResult<Hash> {
    Hash::from_str(s).map_err(|e| invalid_params(format!("Invalid param: {e:?}")))
}

fn to_value<T: Serialize>(v: T) -> RpcResult<Value> {
    serde_json::to_value(v).map_err(internal)
}

/// `{"context": {"slot", "apiVersion"}, "value": ...}`.
fn with_context<T: Serialize>(slot: u64, value: T) -> RpcResult<Value> {
    to_value(Response {
        context: RpcResponseContext::new(slot),
        value,
    })
}

fn check_min_context_slot(min_context_slot: Option<u64>, slot: u64) -> RpcResult<()> {
    match min_context_slot {
        Some(min) if min > slot => {
            Err(RpcCustomError::MinContextSlotNotReached { context_slot: slot }.into())
        }
        _ => Ok(()),
    }
}

fn context_min_slot(config: &Option<RpcContextConfig>) -> Option<u64> {
    config.as_ref().and_then(|c| c.min_context_slot)
}

// ---- accounts -------------------------------------------------------------------------------

/// Encodes an account as Solana's RPC does, refusing base58 for data over 128 bytes.
async fn encode_account(
    bank: &BankState,
    key: &Pubkey,
    account: &Account,
    encoding: UiAccountEncoding,
    data_slice: Option<UiDataSliceConfig>,
) -> RpcResult<UiAccount> {
    if matches!(
        encoding,
        UiAccountEncoding::Binary | UiAccountEncoding::Base58
    ) {
        let len = data_slice
            .map(|s| s.length.min(account.data.len().saturating_sub(s.offset)))
            .unwrap_or(account.data.len());
        if len > MAX_BASE58_BYTES {
            return Err(Error {
                code: ErrorCode::InvalidRequest,
                message: format!(
                    "Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, \
                     please use Base64 encoding."
                ),
                data: None,
            });
        }
    }
    let additional = if encoding == UiAccountEncoding::JsonParsed {
        token_additional_data(bank, account).await?
    } else {
        None
    };
    Ok(encode_ui_account(
        key, account, encoding, additional, data_slice,
    ))
}

/// The mint's decimals for parsing a token account as JSON.
pub(crate) async fn token_additional_data(
    bank: &BankState,
    account: &Account,
) -> RpcResult<Option<AccountAdditionalDataV3>> {
    if !bank::is_token_program(&account.owner) {
        return Ok(None);
    }
    let Some(mint) = get_token_account_mint(&account.data) else {
        return Ok(None);
    };
    let decimals = bank.mint_decimals(&mint).await.map_err(bank_err)?;
    Ok(decimals.map(|d| AccountAdditionalDataV3 {
        spl_token_additional_data: Some(SplTokenAdditionalDataV2::with_decimals(d)),
    }))
}

fn account_config(
    config: Option<RpcAccountInfoConfig>,
    default: UiAccountEncoding,
) -> (UiAccountEncoding, Option<UiDataSliceConfig>, Option<u64>) {
    let config = config.unwrap_or_default();
    (
        config.encoding.unwrap_or(default),
        config.data_slice,
        config.min_context_slot,
    )
}

async fn get_account_info(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (key, config): (String, Option<RpcAccountInfoConfig>) = parse(params, 1, 2)?;
    let key = verify_pubkey(&key)?;
    let (encoding, slice, min_slot) = account_config(config, UiAccountEncoding::Binary);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let account = b.account(key).await.map_err(bank_err)?;
            let value = match account {
                Some(a) => Some(encode_account(b, &key, &a, encoding, slice).await?),
                None => None,
            };
            with_context(b.slot(), value)
        }
        .boxed_local()
    })
    .await
}

async fn get_multiple_accounts(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (keys, config): (Vec<String>, Option<RpcAccountInfoConfig>) = parse(params, 1, 2)?;
    if keys.len() > MAX_MULTIPLE_ACCOUNTS {
        return Err(invalid_params(format!(
            "Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}"
        )));
    }
    let keys = keys
        .iter()
        .map(|k| verify_pubkey(k))
        .collect::<RpcResult<Vec<_>>>()?;
    let (encoding, slice, min_slot) = account_config(config, UiAccountEncoding::Base64);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let mut out = Vec::with_capacity(keys.len());
            for key in &keys {
                out.push(match b.account(*key).await.map_err(bank_err)? {
                    Some(a) => Some(encode_account(b, key, &a, encoding, slice).await?),
                    None => None,
                });
            }
            with_context(b.slot(), out)
        }
        .boxed_local()
    })
    .await
}

pub(crate) fn filter_matches(filter: &RpcFilterType, account: &Account) -> bool {
    match filter {
        RpcFilterType::DataSize(size) => account.data.len() as u64 == *size,
        RpcFilterType::Memcmp(compare) => compare.bytes_match(&account.data),
        RpcFilterType::TokenAccountState => get_token_account_mint(&account.data).is_some(),
    }
}

/// `getProgramAccounts` / `programSubscribe` filters: at most four, each well-formed.
pub(crate) fn check_filters(filters: &[RpcFilterType]) -> RpcResult<()> {
    if filters.len() > MAX_FILTERS {
        return Err(invalid_params(format!(
            "Too many filters provided; max {MAX_FILTERS}"
        )));
    }
    for filter in filters {
        filter
            .verify()
            .map_err(|e| invalid_params(format!("Invalid param: {e:?}")))?;
    }
    Ok(())
}

async fn get_program_accounts(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (program, config): (String, Option<RpcProgramAccountsConfig>) = parse(params, 1, 2)?;
    let program = verify_pubkey(&program)?;
    let config = config.unwrap_or_default();
    let filters = config.filters.unwrap_or_default();
    check_filters(&filters)?;
    let with_ctx = config.with_context.unwrap_or(false);
    let (encoding, slice, min_slot) =
        account_config(Some(config.account_config), UiAccountEncoding::Binary);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let accounts = b.program_accounts(&program).await.map_err(bank_err)?;
            let mut out = Vec::new();
            for (key, account) in accounts {
                if filters.iter().all(|f| filter_matches(f, &account)) {
                    out.push(RpcKeyedAccount {
                        pubkey: key.to_string(),
                        account: encode_account(b, &key, &account, encoding, slice).await?,
                    });
                }
            }
            let value = if with_ctx {
                OptionalContext::Context(Response {
                    context: RpcResponseContext::new(b.slot()),
                    value: out,
                })
            } else {
                OptionalContext::NoContext(out)
            };
            to_value(value)
        }
        .boxed_local()
    })
    .await
}

async fn get_balance(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (key, config): (String, Option<RpcContextConfig>) = parse(params, 1, 2)?;
    let key = verify_pubkey(&key)?;
    let min_slot = context_min_slot(&config);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let lamports = b
                .account(key)
                .await
                .map_err(bank_err)?
                .map_or(0, |a| a.lamports);
            with_context(b.slot(), lamports)
        }
        .boxed_local()
    })
    .await
}

async fn get_token_account_balance(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (key, _config): (String, Option<CommitmentConfig>) = parse(params, 1, 2)?;
    let key = verify_pubkey(&key)?;
    run(&bank, move |b| {
        async move {
            let account = b
                .account(key)
                .await
                .map_err(bank_err)?
                .ok_or_else(|| invalid_params("Invalid param: could not find account"))?;
            let (mint, _owner, amount) = bank::token_account_fields(&account)
                .ok_or_else(|| invalid_params("Invalid param: not a Token account"))?;
            let decimals = b
                .mint_decimals(&mint)
                .await
                .map_err(bank_err)?
                .ok_or_else(|| invalid_params("Invalid param: could not find mint"))?;
            let amount = token_amount_to_ui_amount_v3(
                amount,
                &SplTokenAdditionalDataV2::with_decimals(decimals),
            );
            with_context(b.slot(), amount)
        }
        .boxed_local()
    })
    .await
}

async fn get_minimum_balance_for_rent_exemption(
    bank: BankHandle,
    params: Params,
) -> RpcResult<Value> {
    let (len, _config): (usize, Option<CommitmentConfig>) = parse(params, 1, 2)?;
    Ok(json!(bank.info.rent.minimum_balance(len).max(1)))
}

// ---- cluster --------------------------------------------------------------------------------

async fn get_latest_blockhash(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (config,): (Option<RpcContextConfig>,) = parse(params, 0, 1)?;
    let min_slot = context_min_slot(&config);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let (hash, last_valid_block_height) = b.latest_blockhash().await.map_err(bank_err)?;
            with_context(
                b.slot(),
                RpcBlockhash {
                    blockhash: hash.to_string(),
                    last_valid_block_height,
                },
            )
        }
        .boxed_local()
    })
    .await
}

async fn is_blockhash_valid(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (hash, config): (String, Option<RpcContextConfig>) = parse(params, 1, 2)?;
    let hash = verify_hash(&hash)?;
    let min_slot = context_min_slot(&config);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let valid = b.blockhash_valid(hash).await.map_err(bank_err)?;
            with_context(b.slot(), valid)
        }
        .boxed_local()
    })
    .await
}

async fn get_slot(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (config,): (Option<RpcContextConfig>,) = parse(params, 0, 1)?;
    let min_slot = context_min_slot(&config);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            Ok(json!(b.slot()))
        }
        .boxed_local()
    })
    .await
}

async fn get_block_height(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (config,): (Option<RpcContextConfig>,) = parse(params, 0, 1)?;
    let min_slot = context_min_slot(&config);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            Ok(json!(b.block_height().await.map_err(bank_err)?))
        }
        .boxed_local()
    })
    .await
}

async fn get_epoch_info(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (config,): (Option<RpcContextConfig>,) = parse(params, 0, 1)?;
    let min_slot = context_min_slot(&config);
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let slot = b.slot();
            let schedule = b.epoch_schedule();
            let (epoch, slot_index) = schedule.get_epoch_and_slot_index(slot);
            let info = EpochInfo {
                epoch,
                slot_index,
                slots_in_epoch: schedule.get_slots_in_epoch(epoch),
                absolute_slot: slot,
                block_height: b.block_height().await.map_err(bank_err)?,
                transaction_count: Some(b.transaction_count()),
            };
            to_value(info)
        }
        .boxed_local()
    })
    .await
}

async fn get_genesis_hash(bank: BankHandle, params: Params) -> RpcResult<Value> {
    no_params(params)?;
    Ok(json!(bank.info.genesis_hash.to_string()))
}

async fn get_version(_bank: BankHandle, params: Params) -> RpcResult<Value> {
    no_params(params)?;
    let version = solana_version::Version::default();
    to_value(RpcVersionInfo {
        solana_core: version.to_string(),
        feature_set: Some(version.feature_set),
    })
}

async fn get_health(_bank: BankHandle, params: Params) -> RpcResult<Value> {
    no_params(params)?;
    Ok(json!("ok"))
}

async fn get_recent_prioritization_fees(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (keys,): (Option<Vec<String>>,) = parse(params, 0, 1)?;
    let keys = keys.unwrap_or_default();
    if keys.len() > MAX_PRIORITIZATION_FEE_ACCOUNTS {
        return Err(invalid_params(format!(
            "Too many inputs provided; max {MAX_PRIORITIZATION_FEE_ACCOUNTS}"
        )));
    }
    let keys = keys
        .iter()
        .map(|k| verify_pubkey(k))
        .collect::<RpcResult<Vec<_>>>()?;
    run(&bank, move |b| {
        async move {
            let since = b.slot().saturating_sub(PRIORITIZATION_FEE_SLOTS);
            // Per slot: the lowest price of any transaction, raised to the lowest price paid
            // by transactions write-locking each requested account (0 if none did).
            let mut by_slot: BTreeMap<u64, Vec<&TxRecord>> = BTreeMap::new();
            for record in b.recent_records(since) {
                by_slot.entry(record.slot).or_default().push(record);
            }
            let fees: Vec<RpcPrioritizationFee> = by_slot
                .into_iter()
                .map(|(slot, records)| {
                    let block_min = records.iter().map(|r| r.cu_price).min().unwrap_or(0);
                    let account_max = keys
                        .iter()
                        .map(|k| {
                            records
                                .iter()
                                .filter(|r| r.writable.contains(k))
                                .map(|r| r.cu_price)
                                .min()
                                .unwrap_or(0)
                        })
                        .max()
                        .unwrap_or(0);
                    RpcPrioritizationFee {
                        slot,
                        prioritization_fee: block_min.max(account_max),
                    }
                })
                .collect();
            to_value(fees)
        }
        .boxed_local()
    })
    .await
}

// ---- transactions ---------------------------------------------------------------------------

/// Decodes a wire transaction as Solana's RPC does (size limits, error messages).
fn decode_transaction(
    encoded: String,
    encoding: Option<UiTransactionEncoding>,
) -> RpcResult<VersionedTransaction> {
    let encoding = encoding.unwrap_or(UiTransactionEncoding::Base58);
    let binary = encoding.into_binary_encoding().ok_or_else(|| {
        invalid_params(format!(
            "unsupported encoding: {encoding}. Supported encodings: base58, base64"
        ))
    })?;
    let type_name = "solana_transaction::versioned::VersionedTransaction";
    let wire = match binary {
        TransactionBinaryEncoding::Base58 => {
            if encoded.len() > MAX_BASE58_SIZE {
                return Err(invalid_params(format!(
                    "base58 encoded {type_name} too large: {} bytes (max: encoded/raw {MAX_BASE58_SIZE}/{PACKET_DATA_SIZE})",
                    encoded.len()
                )));
            }
            bs58::decode(&encoded)
                .into_vec()
                .map_err(|e| invalid_params(format!("invalid base58 encoding: {e:?}")))?
        }
        TransactionBinaryEncoding::Base64 => {
            if encoded.len() > MAX_BASE64_SIZE {
                return Err(invalid_params(format!(
                    "base64 encoded {type_name} too large: {} bytes (max: encoded/raw {MAX_BASE64_SIZE}/{PACKET_DATA_SIZE})",
                    encoded.len()
                )));
            }
            BASE64_STANDARD
                .decode(&encoded)
                .map_err(|e| invalid_params(format!("invalid base64 encoding: {e:?}")))?
        }
    };
    if wire.len() > PACKET_DATA_SIZE {
        return Err(invalid_params(format!(
            "decoded {type_name} too large: {} bytes (max: {PACKET_DATA_SIZE} bytes)",
            wire.len()
        )));
    }
    use bincode::Options;
    let tx: VersionedTransaction = bincode::options()
        .with_limit(PACKET_DATA_SIZE as u64)
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .deserialize_from(&wire[..])
        .map_err(|e| invalid_params(format!("failed to deserialize {type_name}: {e}")))?;
    if tx.signatures.is_empty() {
        return Err(invalid_params(format!(
            "invalid transaction: {}",
            TransactionError::SanitizeFailure
        )));
    }
    tx.sanitize().map_err(|_| {
        invalid_params(format!(
            "invalid transaction: {}",
            TransactionError::SanitizeFailure
        ))
    })?;
    Ok(tx)
}

fn verify_signatures(tx: &VersionedTransaction) -> RpcResult<()> {
    if tx.verify_with_results().iter().all(|ok| *ok) {
        Ok(())
    } else {
        Err(RpcCustomError::TransactionSignatureVerificationFailure.into())
    }
}

fn ui_inner_instructions(sim: &Simulation) -> Option<Vec<UiInnerInstructions>> {
    let details = sim.simulation_details.as_ref()?;
    let inner = details.inner_instructions.as_ref()?;
    Some(
        inner
            .iter()
            .enumerate()
            .map(|(index, ixs)| UiInnerInstructions {
                index: index as u8,
                instructions: ixs
                    .iter()
                    .map(|ix| {
                        UiInstruction::Compiled(UiCompiledInstruction::from(
                            &ix.instruction,
                            Some(ix.stack_height as u32),
                        ))
                    })
                    .collect(),
            })
            .filter(|i| !i.instructions.is_empty())
            .collect(),
    )
}

/// The simulation as `simulateTransaction` / the preflight error report it.
fn simulation_result(
    err: Option<TransactionError>,
    sim: &Simulation,
    inner_instructions: bool,
    replacement_blockhash: Option<RpcBlockhash>,
) -> RpcSimulateTransactionResult {
    let details = sim.simulation_details.as_ref();
    RpcSimulateTransactionResult {
        err: err.map(Into::into),
        logs: details.map(|d| d.logs.clone()),
        accounts: None,
        units_consumed: details.map(|d| d.units_consumed),
        loaded_accounts_data_size: details.map(|d| d.loaded_accounts_data_size),
        return_data: details
            .and_then(|d| d.return_data.clone())
            .map(UiTransactionReturnData::from),
        inner_instructions: if inner_instructions {
            ui_inner_instructions(sim)
        } else {
            None
        },
        replacement_blockhash,
        fee: None,
        pre_balances: None,
        post_balances: None,
        pre_token_balances: None,
        post_token_balances: None,
        loaded_addresses: None,
    }
}

/// A transaction that could not be turned into a runtime transaction by the bank (no details).
fn sanitize_error(err: TransactionError) -> Error {
    invalid_params(format!("invalid transaction: {err}"))
}

/// Preflight (unless skipped), then execution; returns the signature. A transaction that fails
/// while executing is still recorded (with its error) and its signature returned, as on a
/// validator; one the bank refuses to execute is dropped (logged).
async fn submit(
    b: &mut BankState,
    tx: VersionedTransaction,
    skip_preflight: bool,
) -> RpcResult<Signature> {
    let signature = tx.signatures[0];
    let mut preflight = None;
    if !skip_preflight {
        let sim = b.simulate(tx.clone()).await.map_err(bank_err)?;
        if let Some(Err(err)) = &sim.result {
            if sim.simulation_details.is_none() {
                return Err(sanitize_error(err.clone()));
            }
            return Err(RpcCustomError::SendTransactionPreflightFailure {
                message: format!("Transaction simulation failed: {err}"),
                result: simulation_result(Some(err.clone()), &sim, false, None),
            }
            .into());
        }
        preflight = Some(sim);
    }
    b.note_received(signature);
    match b.execute(tx, preflight).await.map_err(bank_err)? {
        Executed::Committed(None) => {
            tracing::debug!(%signature, "transaction succeeded");
        }
        Executed::Committed(Some(err)) => {
            tracing::debug!(%signature, %err, "transaction failed");
        }
        Executed::Dropped(err) => {
            tracing::warn!(%signature, %err, "transaction dropped (not executed)");
        }
    }
    Ok(signature)
}

async fn send_transaction(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (data, config): (String, Option<RpcSendTransactionConfig>) = parse(params, 1, 2)?;
    let config = config.unwrap_or_default();
    let tx = decode_transaction(data, config.encoding)?;
    verify_signatures(&tx)?;
    let skip_preflight = config.skip_preflight;
    let min_slot = config.min_context_slot;
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let signature = submit(b, tx, skip_preflight).await?;
            Ok(json!(signature.to_string()))
        }
        .boxed_local()
    })
    .await
}

async fn simulate_transaction(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (data, config): (String, Option<RpcSimulateTransactionConfig>) = parse(params, 1, 2)?;
    let config = config.unwrap_or_default();
    let mut tx = decode_transaction(data, config.encoding)?;
    if config.sig_verify && config.replace_recent_blockhash {
        return Err(invalid_params(
            "sigVerify may not be used with replaceRecentBlockhash",
        ));
    }
    if config.accounts.is_some() {
        return Err(invalid_params(
            "Invalid params: `accounts` is not supported by this endpoint (solana-program-test's \
             banks server does not return post-simulation accounts); read them with \
             getMultipleAccounts after sending the transaction",
        ));
    }
    if config.sig_verify {
        verify_signatures(&tx)?;
    }
    let replace = config.replace_recent_blockhash;
    let inner = config.inner_instructions;
    let min_slot = config.min_context_slot;
    run(&bank, move |b| {
        async move {
            check_min_context_slot(min_slot, b.slot())?;
            let mut replacement = None;
            if replace {
                let (hash, last_valid_block_height) =
                    b.latest_blockhash().await.map_err(bank_err)?;
                tx.message.set_recent_blockhash(hash);
                replacement = Some(RpcBlockhash {
                    blockhash: hash.to_string(),
                    last_valid_block_height,
                });
            }
            let sim = b.simulate(tx).await.map_err(bank_err)?;
            let err = match &sim.result {
                Some(Err(err)) if sim.simulation_details.is_none() => {
                    return Err(sanitize_error(err.clone()))
                }
                Some(Err(err)) => Some(err.clone()),
                _ => None,
            };
            with_context(b.slot(), simulation_result(err, &sim, inner, replacement))
        }
        .boxed_local()
    })
    .await
}

async fn request_airdrop(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (to, lamports, _config): (String, u64, Option<RpcRequestAirdropConfig>) =
        parse(params, 2, 3)?;
    let to = verify_pubkey(&to)?;
    run(&bank, move |b| {
        async move {
            let tx = b
                .airdrop_transaction(&to, lamports)
                .await
                .map_err(bank_err)?;
            let signature = submit(b, tx, false).await?;
            tracing::info!(%to, lamports, faucet = %b.faucet(), "airdrop");
            Ok(json!(signature.to_string()))
        }
        .boxed_local()
    })
    .await
}

fn transaction_status(record: &TxRecord) -> TransactionStatus {
    TransactionStatus {
        slot: record.slot,
        confirmations: None,
        status: record.meta.status.clone(),
        err: record.meta.status.clone().err(),
        confirmation_status: Some(TransactionConfirmationStatus::Finalized),
    }
}

async fn get_signature_statuses(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (signatures, _config): (Vec<String>, Option<RpcSignatureStatusConfig>) =
        parse(params, 1, 2)?;
    if signatures.len() > MAX_SIGNATURE_STATUSES {
        return Err(invalid_params(format!(
            "Too many inputs provided; max {MAX_SIGNATURE_STATUSES}"
        )));
    }
    let signatures = signatures
        .iter()
        .map(|s| verify_signature(s))
        .collect::<RpcResult<Vec<_>>>()?;
    run(&bank, move |b| {
        async move {
            let statuses: Vec<Option<TransactionStatus>> = signatures
                .iter()
                .map(|s| b.record(s).map(transaction_status))
                .collect();
            with_context(b.slot(), statuses)
        }
        .boxed_local()
    })
    .await
}

fn encode_transaction(
    tx: &VersionedTransaction,
    encoding: UiTransactionEncoding,
) -> RpcResult<EncodedTransaction> {
    Ok(match encoding {
        UiTransactionEncoding::Binary => EncodedTransaction::LegacyBinary(
            bs58::encode(bincode::serialize(tx).map_err(internal)?).into_string(),
        ),
        UiTransactionEncoding::Base58 => EncodedTransaction::Binary(
            bs58::encode(bincode::serialize(tx).map_err(internal)?).into_string(),
            TransactionBinaryEncoding::Base58,
        ),
        UiTransactionEncoding::Base64 => EncodedTransaction::Binary(
            BASE64_STANDARD.encode(bincode::serialize(tx).map_err(internal)?),
            TransactionBinaryEncoding::Base64,
        ),
        // jsonParsed falls back to the raw JSON message.
        UiTransactionEncoding::Json | UiTransactionEncoding::JsonParsed => {
            let message = &tx.message;
            EncodedTransaction::Json(UiTransaction {
                signatures: tx.signatures.iter().map(ToString::to_string).collect(),
                message: UiMessage::Raw(UiRawMessage {
                    header: *message.header(),
                    account_keys: message
                        .static_account_keys()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    recent_blockhash: message.recent_blockhash().to_string(),
                    instructions: message
                        .instructions()
                        .iter()
                        .map(|ix| UiCompiledInstruction::from(ix, None))
                        .collect(),
                    address_table_lookups: message
                        .address_table_lookups()
                        .map(|l| l.iter().map(Into::into).collect()),
                }),
            })
        }
    })
}

async fn get_transaction(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (signature, config): (
        String,
        Option<RpcEncodingConfigWrapper<RpcTransactionConfig>>,
    ) = parse(params, 1, 2)?;
    let signature = verify_signature(&signature)?;
    let config = config.map(|c| c.convert_to_current()).unwrap_or_default();
    if config
        .commitment
        .is_some_and(|c| !c.is_at_least_confirmed())
    {
        return Err(invalid_params(
            "Method does not support commitment below `confirmed`",
        ));
    }
    let encoding = config.encoding.unwrap_or(UiTransactionEncoding::Json);
    let max_version = config.max_supported_transaction_version;
    run(&bank, move |b| {
        async move {
            let Some(record) = b.record(&signature) else {
                return Ok(Value::Null);
            };
            let version = match (record.tx.version(), max_version) {
                (TransactionVersion::Legacy(_), None) => None,
                (TransactionVersion::Number(n), None) => {
                    return Err(RpcCustomError::UnsupportedTransactionVersion(n).into())
                }
                (TransactionVersion::Number(n), Some(max)) if n > max => {
                    return Err(RpcCustomError::UnsupportedTransactionVersion(n).into())
                }
                (v, Some(_)) => Some(v),
            };
            let out = EncodedConfirmedTransactionWithStatusMeta {
                slot: record.slot,
                transaction: EncodedTransactionWithStatusMeta {
                    transaction: encode_transaction(&record.tx, encoding)?,
                    meta: Some(UiTransactionStatusMeta::from(record.meta.clone())),
                    version,
                },
                block_time: Some(record.block_time),
            };
            to_value(out)
        }
        .boxed_local()
    })
    .await
}

// ---- extra methods --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WarpClockArgs {
    unix_timestamp: Option<i64>,
    advance_seconds: Option<u64>,
}

async fn warp_clock(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (args,): (WarpClockArgs,) = parse(params, 1, 1)?;
    run(&bank, move |b| {
        async move {
            let target = match (args.unix_timestamp, args.advance_seconds) {
                (Some(ts), None) => ts,
                (None, Some(secs)) => {
                    let secs = i64::try_from(secs)
                        .map_err(|_| invalid_params("Invalid params: advanceSeconds too large."))?;
                    b.unix_timestamp().saturating_add(secs)
                }
                _ => {
                    return Err(invalid_params(
                        "Invalid params: expected exactly one of unixTimestamp or advanceSeconds.",
                    ))
                }
            };
            match b.warp_clock(target).await {
                Ok(clock) => Ok(json!({
                    "slot": clock.slot,
                    "unixTimestamp": clock.unix_timestamp,
                })),
                Err(WarpError::Backward { now }) => Err(invalid_params(format!(
                    "Invalid params: the clock only moves forward (now {now}, requested {target})."
                ))),
                Err(WarpError::Bank(e)) => Err(bank_err(e)),
            }
        }
        .boxed_local()
    })
    .await
}

async fn expire_blockhashes(bank: BankHandle, params: Params) -> RpcResult<Value> {
    no_params(params)?;
    run(&bank, move |b| {
        async move {
            let advanced = b.expire_blockhashes().await.map_err(bank_err)?;
            let (hash, last_valid_block_height) = b.latest_blockhash().await.map_err(bank_err)?;
            Ok(json!({
                "slot": b.slot(),
                "advancedSlots": advanced,
                "blockhash": hash.to_string(),
                "lastValidBlockHeight": last_valid_block_height,
            }))
        }
        .boxed_local()
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetAccountArgs {
    lamports: u64,
    /// `"<base64>"` or `["<data>", "base64" | "base58"]`.
    #[serde(default)]
    data: Option<Value>,
    owner: String,
    #[serde(default)]
    executable: bool,
    #[serde(default)]
    rent_epoch: Option<u64>,
}

fn decode_account_data(data: Option<Value>) -> RpcResult<Vec<u8>> {
    let bad = |what: &str| invalid_params(format!("Invalid params: account data: {what}."));
    let (text, encoding) = match data {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::String(s)) => (s, "base64".to_string()),
        Some(Value::Array(v)) => match v.as_slice() {
            [Value::String(s), Value::String(e)] => (s.clone(), e.clone()),
            _ => return Err(bad("expected [data, encoding]")),
        },
        Some(_) => return Err(bad("expected a string or [data, encoding]")),
    };
    match encoding.as_str() {
        "base64" => BASE64_STANDARD
            .decode(text)
            .map_err(|_| bad("invalid base64")),
        "base58" => bs58::decode(text)
            .into_vec()
            .map_err(|_| bad("invalid base58")),
        _ => Err(bad("encoding must be base64 or base58")),
    }
}

async fn set_account(bank: BankHandle, params: Params) -> RpcResult<Value> {
    let (key, args): (String, SetAccountArgs) = parse(params, 2, 2)?;
    let key = verify_pubkey(&key)?;
    let account = Account {
        lamports: args.lamports,
        data: decode_account_data(args.data)?,
        owner: verify_pubkey(&args.owner)?,
        executable: args.executable,
        rent_epoch: args.rent_epoch.unwrap_or(0),
    };
    run(&bank, move |b| {
        async move {
            b.set_account(key, account);
            Ok(json!({ "slot": b.slot() }))
        }
        .boxed_local()
    })
    .await
}

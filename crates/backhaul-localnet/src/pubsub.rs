//! PubSub subscriptions and their notifications, as Solana's validator serves them over websocket
//! (`accountSubscribe`, `programSubscribe`, `logsSubscribe`, `signatureSubscribe`, `slotSubscribe`
//! and their `*Unsubscribe`).
//!
//! The subscriptions live in the bank state and are only touched on the bank thread: subscribing,
//! unsubscribing and publishing are bank jobs, so they are ordered with the transactions. While a
//! job runs, the bank records what happened ([`Event`]s: a transaction committed, a new slot, an
//! account overwritten, a signature received); after the job the bank thread turns them into
//! notifications ([`publish`]) and queues them on each subscriber's connection ([`Outbox`]).
//!
//! A subscribe job queues its own response before anything else can be queued for the new
//! subscription, so a client always reads the subscription id before its first notification
//! (even for a signature that was processed before it subscribed, which is notified at once).

use crate::bank::BankState;
use crate::rpc;
use jsonrpc_core::{Error, ErrorCode, Failure, Id, Output, Success, Value, Version};
use serde::Serialize;
use solana_account_decoder::encode_ui_account;
use solana_rpc_client_api::config::{UiAccountEncoding, UiDataSliceConfig};
use solana_rpc_client_api::filter::RpcFilterType;
use solana_rpc_client_api::response::{
    ProcessedSignatureResult, ReceivedSignatureResult, Response, RpcKeyedAccount, RpcLogsResponse,
    RpcResponseContext, RpcSignatureResult, SlotInfo, UiAccount,
};
use solana_sdk::account::Account;
use solana_sdk::hash::{hash, Hash};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::TransactionError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

/// A subscription's id, unique for the endpoint's lifetime (counting from 0, as Agave).
pub(crate) type SubscriptionId = u64;

/// The owner of the sysvar accounts, which change with every slot without a transaction.
const SYSVAR_OWNER: Pubkey = solana_sdk::pubkey!("Sysvar1111111111111111111111111111111111111");

/// A connection's outgoing messages: a bounded queue that the connection's writer drains.
///
/// The bank thread never waits on a client: when a queue is full the message is dropped, the
/// connection is flagged, and its writer closes it (a client that does not read its notifications
/// cannot be served correctly anyway).
#[derive(Clone)]
pub(crate) struct Outbox {
    conn: u64,
    tx: mpsc::Sender<String>,
    overflow: Arc<Overflow>,
}

struct Overflow {
    flagged: AtomicBool,
    notify: Notify,
}

impl Outbox {
    /// A queue of `capacity` messages for connection `conn`, and its receiving end.
    pub fn new(conn: u64, capacity: usize) -> (Outbox, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflow = Arc::new(Overflow {
            flagged: AtomicBool::new(false),
            notify: Notify::new(),
        });
        (Outbox { conn, tx, overflow }, rx)
    }

    pub fn conn(&self) -> u64 {
        self.conn
    }

    /// Queues `message`; `false` if the connection is gone or its queue is full.
    pub fn push(&self, message: String) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if !self.overflow.flagged.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        conn = self.conn,
                        capacity = self.tx.max_capacity(),
                        "websocket client does not read its notifications; closing the connection"
                    );
                }
                self.overflow.notify.notify_one();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Completes once the queue has overflowed.
    pub async fn overflowed(&self) {
        if self.overflow.flagged.load(Ordering::SeqCst) {
            return;
        }
        self.overflow.notify.notified().await;
    }

    fn is_gone(&self) -> bool {
        self.tx.is_closed() || self.overflow.flagged.load(Ordering::SeqCst)
    }
}

/// What a subscription asked for, with its parameters already checked.
#[derive(Clone, Debug)]
pub(crate) enum Params {
    Account {
        key: Pubkey,
        encoding: UiAccountEncoding,
        data_slice: Option<UiDataSliceConfig>,
    },
    Program {
        program: Pubkey,
        filters: Vec<RpcFilterType>,
        encoding: UiAccountEncoding,
        data_slice: Option<UiDataSliceConfig>,
    },
    Logs {
        /// `None`: every transaction (`all` / `allWithVotes`; there are no votes here).
        mentions: Option<Pubkey>,
    },
    Signature {
        signature: Signature,
        /// `enableReceivedNotification`.
        received: bool,
    },
    Slot,
}

impl Params {
    /// The notification's method name.
    fn method(&self) -> &'static str {
        match self {
            Params::Account { .. } => "accountNotification",
            Params::Program { .. } => "programNotification",
            Params::Logs { .. } => "logsNotification",
            Params::Signature { .. } => "signatureNotification",
            Params::Slot => "slotNotification",
        }
    }
}

/// An account's state as far as notifications care (data by hash).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fingerprint {
    lamports: u64,
    owner: Pubkey,
    executable: bool,
    rent_epoch: u64,
    data: Hash,
}

impl Fingerprint {
    fn of(account: &Account) -> Self {
        Fingerprint {
            lamports: account.lamports,
            owner: account.owner,
            executable: account.executable,
            rent_epoch: account.rent_epoch,
            data: hash(&account.data),
        }
    }
}

struct Subscription {
    outbox: Outbox,
    params: Params,
    /// Account subscriptions: the state last notified (or seen at subscribe time), and whether
    /// the account is a sysvar (those change with the slot, without a transaction).
    last: Option<Fingerprint>,
    sysvar: bool,
}

/// What happened in the bank during a job, for [`publish`].
pub(crate) enum Event {
    /// `sendTransaction` / `requestAirdrop` accepted a transaction for execution.
    Received { signature: Signature, slot: u64 },
    /// A transaction was committed (its record is in the bank); `written` are the accounts it
    /// stored, with their state afterwards (empty unless account or program subscriptions exist).
    Committed {
        signature: Signature,
        written: Vec<(Pubkey, Option<Account>)>,
    },
    /// The bank moved to `slot`.
    Slot { parent: u64, slot: u64, root: u64 },
    /// An account was overwritten outside the runtime (`backhaulSetAccount`).
    AccountSet { key: Pubkey },
}

/// Why a subscription was refused.
pub(crate) struct LimitReached {
    pub limit: usize,
}

/// Every subscription of every connection, and the events not yet published.
#[derive(Default)]
pub(crate) struct Registry {
    subs: BTreeMap<SubscriptionId, Subscription>,
    per_connection: HashMap<u64, usize>,
    next_id: SubscriptionId,
    events: Vec<Event>,
}

impl Registry {
    /// Remembers `event` for the next [`publish`] (nothing is kept while nobody subscribes).
    pub fn record(&mut self, event: Event) {
        if !self.subs.is_empty() {
            self.events.push(event);
        }
    }

    /// Whether a subscription needs accounts' states after transactions.
    pub fn wants_accounts(&self) -> bool {
        self.subs
            .values()
            .any(|s| matches!(s.params, Params::Account { .. } | Params::Program { .. }))
    }

    /// Whether anyone waits for `signature` to be received.
    pub fn wants_received(&self, signature: &Signature) -> bool {
        self.subs.values().any(|s| {
            matches!(&s.params, Params::Signature { signature: sig, received: true } if sig == signature)
        })
    }

    fn add(
        &mut self,
        outbox: &Outbox,
        params: Params,
        last: Option<Fingerprint>,
        sysvar: bool,
        limit: usize,
    ) -> Result<SubscriptionId, LimitReached> {
        let count = self.per_connection.entry(outbox.conn).or_insert(0);
        if *count >= limit {
            return Err(LimitReached { limit });
        }
        *count += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.subs.insert(
            id,
            Subscription {
                outbox: outbox.clone(),
                params,
                last,
                sysvar,
            },
        );
        Ok(id)
    }

    /// Removes subscription `id` if connection `conn` owns it.
    pub fn remove(&mut self, conn: u64, id: SubscriptionId) -> bool {
        if self.subs.get(&id).is_none_or(|s| s.outbox.conn != conn) {
            return false;
        }
        self.drop_sub(id);
        true
    }

    /// Removes every subscription of connection `conn` (it closed).
    pub fn remove_connection(&mut self, conn: u64) {
        self.subs.retain(|_, s| s.outbox.conn != conn);
        self.per_connection.remove(&conn);
        if self.subs.is_empty() {
            self.events.clear();
        }
    }

    fn drop_sub(&mut self, id: SubscriptionId) {
        if let Some(sub) = self.subs.remove(&id) {
            if let Some(count) = self.per_connection.get_mut(&sub.outbox.conn) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_connection.remove(&sub.outbox.conn);
                }
            }
        }
    }

    /// Forgets the subscriptions of connections that closed or overflowed.
    fn sweep(&mut self) {
        let gone: HashSet<u64> = self
            .subs
            .values()
            .filter(|s| s.outbox.is_gone())
            .map(|s| s.outbox.conn)
            .collect();
        for conn in gone {
            self.remove_connection(conn);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.subs.len()
    }
}

// ---- messages -------------------------------------------------------------------------------

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain data types cannot fail; keep a valid message if it ever did.
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialize a websocket message");
        String::from(
            r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":null}"#,
        )
    })
}

/// A JSON-RPC success response.
pub(crate) fn success(id: Id, result: Value) -> String {
    to_json(&Output::Success(Success {
        jsonrpc: Some(Version::V2),
        result,
        id,
    }))
}

/// A JSON-RPC error response.
pub(crate) fn failure(id: Id, error: Error) -> String {
    to_json(&Output::Failure(Failure {
        jsonrpc: Some(Version::V2),
        error,
        id,
    }))
}

#[derive(Serialize)]
struct Notification<'a, T> {
    jsonrpc: &'static str,
    method: &'a str,
    params: NotificationParams<T>,
}

#[derive(Serialize)]
struct NotificationParams<T> {
    result: T,
    subscription: SubscriptionId,
}

/// `{"jsonrpc":"2.0","method":"<x>Notification","params":{"result":…,"subscription":id}}`.
fn notification<T: Serialize>(method: &str, id: SubscriptionId, result: T) -> String {
    to_json(&Notification {
        jsonrpc: "2.0",
        method,
        params: NotificationParams {
            result,
            subscription: id,
        },
    })
}

/// `{"context":{"slot"},"value":…}` as notifications carry it (no `apiVersion`, as Agave).
fn in_context<T>(slot: u64, value: T) -> Response<T> {
    Response {
        context: RpcResponseContext {
            slot,
            api_version: None,
        },
        value,
    }
}

// ---- subscribing ----------------------------------------------------------------------------

/// Adds a subscription for `outbox`'s connection and queues the response to request `id` (the
/// subscription id, or the error when the connection has `limit` subscriptions already). A
/// signature that was already processed is notified right after, and the subscription ends.
pub(crate) async fn subscribe(
    bank: &mut BankState,
    outbox: Outbox,
    id: Id,
    params: Params,
    limit: usize,
) {
    let (last, sysvar) = match &params {
        Params::Account { key, .. } => match bank.account(*key).await {
            Ok(account) => {
                let account = account.unwrap_or_default();
                (
                    Some(Fingerprint::of(&account)),
                    account.owner == SYSVAR_OWNER,
                )
            }
            Err(e) => {
                outbox.push(failure(id, rpc::internal(e)));
                return;
            }
        },
        _ => (None, false),
    };
    let processed = match &params {
        Params::Signature { signature, .. } => bank
            .record(signature)
            .map(|r| (r.slot, r.meta.status.clone().err())),
        _ => None,
    };
    let method = params.method();
    let sub = match bank.pubsub.add(&outbox, params, last, sysvar, limit) {
        Ok(sub) => sub,
        Err(LimitReached { limit }) => {
            outbox.push(failure(
                id,
                Error {
                    code: ErrorCode::InternalError,
                    message: format!(
                        "Internal Error: Subscription refused. This connection has {limit} \
                         subscriptions, the most it may have; unsubscribe from some or open \
                         another connection"
                    ),
                    data: None,
                },
            ));
            return;
        }
    };
    tracing::debug!(conn = outbox.conn, subscription = sub, method, "subscribed");
    outbox.push(success(id, Value::from(sub)));
    if let Some((slot, err)) = processed {
        outbox.push(signature_processed(sub, slot, err));
        bank.pubsub.drop_sub(sub);
    }
}

fn signature_processed(sub: SubscriptionId, slot: u64, err: Option<TransactionError>) -> String {
    notification(
        "signatureNotification",
        sub,
        in_context(
            slot,
            RpcSignatureResult::ProcessedSignature(ProcessedSignatureResult {
                err: err.map(Into::into),
            }),
        ),
    )
}

// ---- publishing -----------------------------------------------------------------------------

/// Encodes an account for a notification. Unlike the HTTP methods there is no size limit for
/// base58 (as Agave); `jsonParsed` token accounts get their mint's decimals.
async fn encode(
    bank: &BankState,
    key: &Pubkey,
    account: &Account,
    encoding: UiAccountEncoding,
    data_slice: Option<UiDataSliceConfig>,
) -> UiAccount {
    let additional = if encoding == UiAccountEncoding::JsonParsed {
        rpc::token_additional_data(bank, account)
            .await
            .unwrap_or_default()
    } else {
        None
    };
    encode_ui_account(key, account, encoding, additional, data_slice)
}

/// Turns the events recorded during the last job into notifications.
pub(crate) async fn publish(bank: &mut BankState) {
    if bank.pubsub.events.is_empty() {
        return;
    }
    let events = std::mem::take(&mut bank.pubsub.events);
    // Taken out while the bank is read; nothing else runs on the bank thread meanwhile.
    let mut registry = std::mem::take(&mut bank.pubsub);
    for event in events {
        match event {
            Event::Received { signature, slot } => received(&registry, signature, slot),
            Event::Committed { signature, written } => {
                committed(bank, &mut registry, signature, written).await
            }
            Event::Slot { parent, slot, root } => {
                new_slot(bank, &mut registry, parent, slot, root).await
            }
            Event::AccountSet { key } => account_set(bank, &mut registry, key).await,
        }
    }
    registry.sweep();
    // Subscriptions added by a job always come with the registry back in place.
    bank.pubsub = registry;
}

fn received(registry: &Registry, signature: Signature, slot: u64) {
    for (id, sub) in &registry.subs {
        if matches!(&sub.params, Params::Signature { signature: s, received: true } if *s == signature)
        {
            sub.outbox.push(notification(
                "signatureNotification",
                *id,
                in_context(
                    slot,
                    RpcSignatureResult::ReceivedSignature(
                        ReceivedSignatureResult::ReceivedSignature,
                    ),
                ),
            ));
        }
    }
}

async fn committed(
    bank: &BankState,
    registry: &mut Registry,
    signature: Signature,
    written: Vec<(Pubkey, Option<Account>)>,
) {
    let Some(record) = bank.record(&signature) else {
        return;
    };
    let slot = record.slot;
    let err = record.meta.status.clone().err();
    let logs = record.meta.log_messages.clone().unwrap_or_default();
    let keys: Vec<Pubkey> = record
        .tx
        .message
        .static_account_keys()
        .iter()
        .chain(record.meta.loaded_addresses.writable.iter())
        .chain(record.meta.loaded_addresses.readonly.iter())
        .copied()
        .collect();

    let mut done = Vec::new();
    for (id, sub) in registry.subs.iter_mut() {
        match &sub.params {
            Params::Signature { signature: s, .. } if *s == signature => {
                sub.outbox.push(signature_processed(*id, slot, err.clone()));
                done.push(*id);
            }
            Params::Logs { mentions } if mentions.is_none_or(|k| keys.contains(&k)) => {
                sub.outbox.push(notification(
                    "logsNotification",
                    *id,
                    in_context(
                        slot,
                        RpcLogsResponse {
                            signature: signature.to_string(),
                            err: err.clone().map(Into::into),
                            logs: logs.clone(),
                        },
                    ),
                ));
            }
            Params::Account {
                key,
                encoding,
                data_slice,
            } => {
                let Some((_, account)) = written.iter().find(|(k, _)| k == key) else {
                    continue;
                };
                let account = account.clone().unwrap_or_default();
                sub.last = Some(Fingerprint::of(&account));
                let ui = encode(bank, key, &account, *encoding, *data_slice).await;
                sub.outbox.push(notification(
                    "accountNotification",
                    *id,
                    in_context(slot, ui),
                ));
            }
            Params::Program {
                program,
                filters,
                encoding,
                data_slice,
            } => {
                for (key, account) in &written {
                    let Some(account) = account else { continue };
                    if account.owner != *program
                        || !filters.iter().all(|f| rpc::filter_matches(f, account))
                    {
                        continue;
                    }
                    let ui = encode(bank, key, account, *encoding, *data_slice).await;
                    sub.outbox.push(notification(
                        "programNotification",
                        *id,
                        in_context(
                            slot,
                            RpcKeyedAccount {
                                pubkey: key.to_string(),
                                account: ui,
                            },
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    // A signature subscription ends with its notification, as on a validator.
    for id in done {
        registry.drop_sub(id);
    }
}

async fn new_slot(bank: &BankState, registry: &mut Registry, parent: u64, slot: u64, root: u64) {
    // Sysvars (Clock, SlotHashes, …) change with every slot: read each subscribed one once.
    let mut current: HashMap<Pubkey, Account> = HashMap::new();
    for sub in registry.subs.values() {
        if let (Params::Account { key, .. }, true) = (&sub.params, sub.sysvar) {
            if !current.contains_key(key) {
                match bank.account(*key).await {
                    Ok(account) => {
                        current.insert(*key, account.unwrap_or_default());
                    }
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "could not read a subscribed sysvar")
                    }
                }
            }
        }
    }
    for (id, sub) in registry.subs.iter_mut() {
        match &sub.params {
            Params::Slot => {
                sub.outbox.push(notification(
                    "slotNotification",
                    *id,
                    SlotInfo { slot, parent, root },
                ));
            }
            Params::Account {
                key,
                encoding,
                data_slice,
            } if sub.sysvar => {
                let Some(account) = current.get(key) else {
                    continue;
                };
                let fingerprint = Fingerprint::of(account);
                if sub.last == Some(fingerprint) {
                    continue;
                }
                sub.last = Some(fingerprint);
                let ui = encode(bank, key, account, *encoding, *data_slice).await;
                sub.outbox.push(notification(
                    "accountNotification",
                    *id,
                    in_context(slot, ui),
                ));
            }
            _ => {}
        }
    }
}

async fn account_set(bank: &BankState, registry: &mut Registry, key: Pubkey) {
    let account = match bank.account(key).await {
        Ok(account) => account.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(%key, error = %e, "could not read an overwritten account");
            return;
        }
    };
    let slot = bank.slot();
    for (id, sub) in registry.subs.iter_mut() {
        match &sub.params {
            Params::Account {
                key: k,
                encoding,
                data_slice,
            } if *k == key => {
                sub.last = Some(Fingerprint::of(&account));
                let ui = encode(bank, &key, &account, *encoding, *data_slice).await;
                sub.outbox.push(notification(
                    "accountNotification",
                    *id,
                    in_context(slot, ui),
                ));
            }
            Params::Program {
                program,
                filters,
                encoding,
                data_slice,
            } if account.owner == *program
                && filters.iter().all(|f| rpc::filter_matches(f, &account)) =>
            {
                let ui = encode(bank, &key, &account, *encoding, *data_slice).await;
                sub.outbox.push(notification(
                    "programNotification",
                    *id,
                    in_context(
                        slot,
                        RpcKeyedAccount {
                            pubkey: key.to_string(),
                            account: ui,
                        },
                    ),
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_per_connection_and_freed_on_unsubscribe() {
        let mut registry = Registry::default();
        let (a, _rx_a) = Outbox::new(1, 8);
        let (b, _rx_b) = Outbox::new(2, 8);
        let first = registry.add(&a, Params::Slot, None, false, 2).ok().unwrap();
        let second = registry.add(&a, Params::Slot, None, false, 2).ok().unwrap();
        assert_eq!((first, second), (0, 1));
        assert!(registry.add(&a, Params::Slot, None, false, 2).is_err());
        // Another connection has its own allowance.
        assert!(registry.add(&b, Params::Slot, None, false, 2).is_ok());
        // Only the owner may unsubscribe.
        assert!(!registry.remove(2, first));
        assert!(registry.remove(1, first));
        assert!(!registry.remove(1, first));
        assert!(registry.add(&a, Params::Slot, None, false, 2).is_ok());
        registry.remove_connection(1);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn closed_and_overflowing_connections_are_swept() {
        let mut registry = Registry::default();
        let (closed, rx) = Outbox::new(1, 8);
        let (full, _rx_full) = Outbox::new(2, 1);
        let (ok, _rx_ok) = Outbox::new(3, 8);
        for outbox in [&closed, &full, &ok] {
            registry
                .add(outbox, Params::Slot, None, false, 10)
                .ok()
                .unwrap();
        }
        drop(rx);
        assert!(!closed.push("x".into()));
        assert!(full.push("1".into()));
        assert!(!full.push("2".into()), "a full queue refuses");
        assert!(ok.push("x".into()));
        registry.sweep();
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn messages_have_the_validator_shape() {
        let n = signature_processed(7, 42, None);
        let v: Value = serde_json::from_str(&n).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "jsonrpc": "2.0",
                "method": "signatureNotification",
                "params": {"result": {"context": {"slot": 42}, "value": {"err": null}}, "subscription": 7}
            })
        );
        let v: Value = serde_json::from_str(&success(Id::Num(3), Value::from(9))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"jsonrpc": "2.0", "result": 9, "id": 3})
        );
    }
}

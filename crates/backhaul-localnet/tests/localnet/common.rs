//! Helpers shared by the tests: starting an endpoint, raw JSON-RPC calls, transactions.

use backhaul_localnet::{Localnet, LocalnetConfig};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::Transaction;
use std::str::FromStr;

/// Decimals of the mints the tests create.
pub const DECIMALS: u8 = 6;

pub fn start_with(config: LocalnetConfig) -> Localnet {
    Localnet::start(config).expect("localnet starts")
}

pub fn start() -> Localnet {
    start_with(LocalnetConfig::default())
}

/// A raw JSON-RPC client.
pub struct Rpc {
    http: reqwest::Client,
    pub url: String,
}

impl Rpc {
    pub fn new(net: &Localnet) -> Self {
        Self::for_url(&net.url())
    }

    pub fn for_url(url: &str) -> Self {
        Rpc {
            http: reqwest::Client::new(),
            url: url.to_string(),
        }
    }

    /// Posts `body` as is and returns the parsed response.
    pub async fn post_raw(&self, body: &str) -> (reqwest::StatusCode, String) {
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("http");
        let status = res.status();
        (status, res.text().await.expect("body"))
    }

    /// `GET <url><path>`: status and body.
    pub async fn get_raw(&self, path: &str) -> (reqwest::StatusCode, String) {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let res = self.http.get(&url).send().await.expect("http");
        let status = res.status();
        (status, res.text().await.expect("body"))
    }

    pub async fn post(&self, body: Value) -> Value {
        let (status, text) = self.post_raw(&body.to_string()).await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// The whole response to `method(params)`; checks the envelope.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let res = self
            .post(json!({"jsonrpc": "2.0", "id": 42, "method": method, "params": params}))
            .await;
        assert_eq!(res["jsonrpc"], "2.0", "{res}");
        assert_eq!(res["id"], 42, "{res}");
        assert!(
            res.get("result").is_some() != res.get("error").is_some(),
            "exactly one of result/error: {res}"
        );
        res
    }

    /// The result of a call that must succeed.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        let res = self.call(method, params).await;
        assert!(res.get("error").is_none(), "{method} failed: {res}");
        res["result"].clone()
    }

    /// The error object of a call that must fail.
    pub async fn err(&self, method: &str, params: Value) -> Value {
        let res = self.call(method, params).await;
        assert!(res.get("result").is_none(), "{method} should fail: {res}");
        let err = res["error"].clone();
        assert!(err["code"].is_i64(), "{err}");
        assert!(err["message"].is_string(), "{err}");
        err
    }

    pub async fn latest_blockhash(&self) -> Hash {
        let res = self.ok("getLatestBlockhash", json!([])).await;
        Hash::from_str(res["value"]["blockhash"].as_str().expect("blockhash")).expect("hash")
    }

    pub async fn slot(&self) -> u64 {
        self.ok("getSlot", json!([])).await.as_u64().expect("slot")
    }

    pub async fn balance(&self, key: &Pubkey) -> u64 {
        self.ok("getBalance", json!([key.to_string()])).await["value"]
            .as_u64()
            .expect("lamports")
    }

    /// Sends `tx` (base64) with the given config; returns the whole response.
    pub async fn send(&self, tx: &Transaction, config: Value) -> Value {
        self.call("sendTransaction", json!([b64(tx), config])).await
    }

    /// Signs `ixs` with `payer` (+ `signers`) over the latest blockhash, sends it with preflight
    /// and asserts that it succeeded.
    pub async fn send_ok(
        &self,
        ixs: &[Instruction],
        payer: &Keypair,
        signers: &[&Keypair],
    ) -> Signature {
        let tx = self.sign(ixs, payer, signers).await;
        let res = self
            .ok("sendTransaction", json!([b64(&tx), {"encoding": "base64"}]))
            .await;
        let sig = Signature::from_str(res.as_str().expect("signature")).expect("sig");
        assert_eq!(sig, tx.signatures[0]);
        let status = self.status(&sig).await;
        assert!(status["err"].is_null(), "transaction failed: {status}");
        sig
    }

    pub async fn sign(
        &self,
        ixs: &[Instruction],
        payer: &Keypair,
        signers: &[&Keypair],
    ) -> Transaction {
        let blockhash = self.latest_blockhash().await;
        let mut keys: Vec<&Keypair> = vec![payer];
        keys.extend_from_slice(signers);
        Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash)
    }

    /// The status of `sig` (panics if unknown).
    pub async fn status(&self, sig: &Signature) -> Value {
        let res = self
            .ok("getSignatureStatuses", json!([[sig.to_string()]]))
            .await;
        let status = res["value"][0].clone();
        assert!(!status.is_null(), "no status for {sig}: {res}");
        status
    }

    /// The clock sysvar's unix timestamp, read through getAccountInfo (jsonParsed).
    pub async fn clock_ts(&self) -> i64 {
        let res = self
            .ok(
                "getAccountInfo",
                json!(["SysvarC1ock11111111111111111111111111111111", {"encoding": "jsonParsed"}]),
            )
            .await;
        res["value"]["data"]["parsed"]["info"]["unixTimestamp"]
            .as_i64()
            .unwrap_or_else(|| panic!("clock: {res}"))
    }
}

pub fn b64(tx: &Transaction) -> String {
    BASE64_STANDARD.encode(bincode::serialize(tx).expect("serialize"))
}

pub fn b58(tx: &Transaction) -> String {
    bs58::encode(bincode::serialize(tx).expect("serialize")).into_string()
}

pub fn transfer(from: &Pubkey, to: &Pubkey, lamports: u64) -> Instruction {
    solana_system_interface::instruction::transfer(from, to, lamports)
}

/// A compute unit price instruction (also makes otherwise identical transactions distinct).
pub fn cu_price(micro_lamports: u64) -> Instruction {
    solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_price(
        micro_lamports,
    )
}

/// Instructions creating a mint (authority `authority`, no freeze authority) at `mint`.
pub fn create_mint_ixs(payer: &Pubkey, mint: &Pubkey, authority: &Pubkey) -> Vec<Instruction> {
    let space = spl_token_interface::state::Mint::LEN;
    vec![
        solana_system_interface::instruction::create_account(
            payer,
            mint,
            rent_exempt(space),
            space as u64,
            &spl_token_interface::ID,
        ),
        spl_token_interface::instruction::initialize_mint2(
            &spl_token_interface::ID,
            mint,
            authority,
            None,
            DECIMALS,
        )
        .expect("initialize_mint2"),
    ]
}

/// Instructions creating a token account of `mint` for `owner` at `account`.
pub fn create_token_account_ixs(
    payer: &Pubkey,
    account: &Pubkey,
    mint: &Pubkey,
    owner: &Pubkey,
) -> Vec<Instruction> {
    let space = spl_token_interface::state::Account::LEN;
    vec![
        solana_system_interface::instruction::create_account(
            payer,
            account,
            rent_exempt(space),
            space as u64,
            &spl_token_interface::ID,
        ),
        spl_token_interface::instruction::initialize_account3(
            &spl_token_interface::ID,
            account,
            mint,
            owner,
        )
        .expect("initialize_account3"),
    ]
}

pub fn mint_to(mint: &Pubkey, to: &Pubkey, authority: &Pubkey, amount: u64) -> Instruction {
    spl_token_interface::instruction::mint_to(
        &spl_token_interface::ID,
        mint,
        to,
        authority,
        &[],
        amount,
    )
    .expect("mint_to")
}

pub fn token_transfer(from: &Pubkey, to: &Pubkey, owner: &Pubkey, amount: u64) -> Instruction {
    spl_token_interface::instruction::transfer(
        &spl_token_interface::ID,
        from,
        to,
        owner,
        &[],
        amount,
    )
    .expect("transfer")
}

/// Rent-exempt minimum for `len` bytes (the default rent, as the bank uses).
pub fn rent_exempt(len: usize) -> u64 {
    solana_sdk::rent::Rent::default().minimum_balance(len)
}

/// A mint and two token accounts (owners `alice` and `bob`), `amount` minted to alice; all
/// created with real SPL Token instructions paid by the faucet (which is the mint authority).
pub struct Tokens {
    pub mint: Pubkey,
    pub alice: Keypair,
    pub bob: Keypair,
    pub alice_tokens: Pubkey,
    pub bob_tokens: Pubkey,
}

pub async fn setup_tokens(rpc: &Rpc, faucet: &Keypair, amount: u64) -> Tokens {
    let mint = Keypair::new();
    let alice = Keypair::new();
    let bob = Keypair::new();
    let alice_tokens = Keypair::new();
    let bob_tokens = Keypair::new();
    let payer = faucet.pubkey();
    rpc.send_ok(
        &create_mint_ixs(&payer, &mint.pubkey(), &payer),
        faucet,
        &[&mint],
    )
    .await;
    let mut ixs = create_token_account_ixs(
        &payer,
        &alice_tokens.pubkey(),
        &mint.pubkey(),
        &alice.pubkey(),
    );
    ixs.extend(create_token_account_ixs(
        &payer,
        &bob_tokens.pubkey(),
        &mint.pubkey(),
        &bob.pubkey(),
    ));
    ixs.push(mint_to(
        &mint.pubkey(),
        &alice_tokens.pubkey(),
        &payer,
        amount,
    ));
    // Alice pays fees for her own transfers later.
    ixs.push(transfer(&payer, &alice.pubkey(), 1_000_000_000));
    rpc.send_ok(&ixs, faucet, &[&alice_tokens, &bob_tokens])
        .await;
    Tokens {
        mint: mint.pubkey(),
        alice,
        bob,
        alice_tokens: alice_tokens.pubkey(),
        bob_tokens: bob_tokens.pubkey(),
    }
}

/// Checks that `logs` nest as a validator prints them: each `Program <id> invoke [n]` at depth
/// `n` (one more than the invocations still open), `consumed` lines for the innermost program,
/// each `success` / `failed` closing the innermost invocation, none left open.
pub fn assert_validator_shaped(logs: &[String]) {
    let mut stack: Vec<Pubkey> = Vec::new();
    for (i, line) in logs.iter().enumerate() {
        let Some((id, rest)) = line
            .strip_prefix("Program ")
            .and_then(|r| r.split_once(' '))
        else {
            continue;
        };
        let Ok(id) = Pubkey::from_str(id) else {
            continue; // "Program log:", "Program data:", "Program return:"
        };
        if let Some(depth) = rest
            .strip_prefix("invoke [")
            .and_then(|d| d.strip_suffix(']'))
        {
            let depth: usize = depth.parse().expect("a depth");
            assert_eq!(
                depth,
                stack.len() + 1,
                "line {i} at the wrong depth: {logs:#?}"
            );
            stack.push(id);
        } else if rest == "success" || rest.starts_with("failed: ") {
            assert_eq!(
                stack.pop(),
                Some(id),
                "line {i} closes another program: {logs:#?}"
            );
        } else if rest.starts_with("consumed ") {
            assert_eq!(
                stack.last(),
                Some(&id),
                "line {i} for another program: {logs:#?}"
            );
        }
    }
    assert!(stack.is_empty(), "invocations left open: {logs:#?}");
}

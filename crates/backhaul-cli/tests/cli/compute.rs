//! Compute-unit limits: every transaction asks for the units its simulation used plus the margin
//! of `backhaul_sdk::compute` (read back from the landed transaction and predicted by simulating
//! the same instructions here), `--compute-unit-limit` fixes the limit instead, the priority fee
//! stays as asked, and a simulation the program refuses sends nothing.

use crate::common::*;
use backhaul_cli::error::{command_error, CommandError};
use backhaul_sdk::compute;
use solana_client::rpc_config::RpcSimulateTransactionConfig;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_sdk::hash::Hash;
use solana_sdk::message::compiled_instruction::CompiledInstruction;
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;
use solana_sdk::transaction::Transaction;
use std::str::FromStr;

/// A landed transaction as `getTransaction` returns it.
struct Landed {
    message: Message,
    /// `meta.computeUnitsConsumed`.
    consumed: u64,
}

impl Landed {
    /// Its instructions as (program, data).
    fn instructions(&self) -> Vec<(Pubkey, Vec<u8>)> {
        self.message
            .instructions
            .iter()
            .map(|ix| {
                (
                    self.message.account_keys[usize::from(ix.program_id_index)],
                    ix.data.clone(),
                )
            })
            .collect()
    }

    /// The limit its SetComputeUnitLimit set.
    fn limit(&self) -> Option<u32> {
        self.instructions()
            .iter()
            .find_map(|(program, data)| compute::decode_compute_unit_limit(program, data))
    }
}

/// Reads transaction `signature` back with `getTransaction` (JSON encoding).
async fn landed(net: &Net, signature: &str) -> Landed {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [signature, {"encoding": "json", "commitment": "confirmed"}]});
    let v: serde_json::Value = net
        .http
        .post(net.url())
        .json(&body)
        .send()
        .await
        .expect("getTransaction")
        .json()
        .await
        .expect("json");
    let result = &v["result"];
    assert!(result.is_object(), "no transaction {signature}: {v}");
    assert!(result["meta"]["err"].is_null(), "it failed: {v}");
    let m = &result["transaction"]["message"];
    let header = &m["header"];
    let byte = |k: &str| u8::try_from(header[k].as_u64().expect("header")).expect("u8");
    let keys: Vec<Pubkey> = m["accountKeys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| Pubkey::from_str(k.as_str().expect("key")).expect("pubkey"))
        .collect();
    let instructions = m["instructions"]
        .as_array()
        .expect("instructions")
        .iter()
        .map(|ix| CompiledInstruction {
            program_id_index: u8::try_from(ix["programIdIndex"].as_u64().expect("index"))
                .expect("u8"),
            accounts: ix["accounts"]
                .as_array()
                .expect("accounts")
                .iter()
                .map(|a| u8::try_from(a.as_u64().expect("account")).expect("u8"))
                .collect(),
            data: bs58::decode(ix["data"].as_str().expect("data"))
                .into_vec()
                .expect("base58"),
        })
        .collect();
    let message = Message::new_with_compiled_instructions(
        byte("numRequiredSignatures"),
        byte("numReadonlySignedAccounts"),
        byte("numReadonlyUnsignedAccounts"),
        keys,
        Hash::from_str(m["recentBlockhash"].as_str().expect("blockhash")).expect("hash"),
        instructions,
    );
    Landed {
        message,
        consumed: result["meta"]["computeUnitsConsumed"]
            .as_u64()
            .expect("computeUnitsConsumed"),
    }
}

/// Simulates `landed`'s instructions as the command line measures them (the highest limit, no
/// price) on the chain as it is now; the units they use.
async fn simulated_units(net: &Net, landed: &Landed) -> u64 {
    let mut message = landed.message.clone();
    let keys = message.account_keys.clone();
    let budget = keys
        .iter()
        .position(|k| *k == compute::COMPUTE_BUDGET_PROGRAM_ID)
        .expect("a compute-budget instruction");
    message
        .instructions
        .retain(|ix| usize::from(ix.program_id_index) != budget);
    message.instructions.insert(
        0,
        CompiledInstruction {
            program_id_index: u8::try_from(budget).expect("u8"),
            accounts: vec![],
            data: ComputeBudgetInstruction::set_compute_unit_limit(
                compute::SIMULATION_COMPUTE_UNIT_LIMIT,
            )
            .data,
        },
    );
    let sim = net
        .rpc
        .simulate_transaction_with_config(
            &Transaction::new_unsigned(message),
            RpcSimulateTransactionConfig {
                sig_verify: false,
                replace_recent_blockhash: true,
                ..RpcSimulateTransactionConfig::default()
            },
        )
        .await
        .expect("simulateTransaction")
        .value;
    assert!(sim.err.is_none(), "the simulation failed: {sim:?}");
    sim.units_consumed.expect("unitsConsumed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transaction_asks_for_its_simulated_units_plus_the_margin() {
    let w = deploy(Net::start(false), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    w.post_price(2, 100_000).await;
    let buyer = net.funded().await;
    w.give_tokens(&buyer.pubkey(), 100 * TOKEN).await;
    let keypair = path_str(&net.keypair_file("buyer", &buyer));
    let buy = |extra: &[&str]| {
        let mut a: Vec<String> = ["firm", "buy", "--tokens", "1", "--keypair", &keypair]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--output".into(), "json".into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let bought = |out: &std::process::Output| -> String {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
        json(out)["signature"]
            .as_str()
            .expect("signature")
            .to_string()
    };

    // The first purchase (it creates the buyer's credit account): the limit is what it used,
    // plus the margin, far below the 400,000 units once asked for every transaction.
    let args = buy(&[]);
    let first = landed(net, &bought(&w.run_cli(&as_strs(&args)).await)).await;
    let limit = first.limit().expect("a SetComputeUnitLimit");
    assert_eq!(limit, compute::limit_from_simulation(first.consumed));
    assert!(u64::from(limit) > first.consumed);
    assert!(limit <= 100_000, "{limit} units for a purchase");
    let budget: Vec<_> = first
        .instructions()
        .into_iter()
        .filter(|(p, _)| *p == compute::COMPUTE_BUDGET_PROGRAM_ID)
        .collect();
    assert_eq!(budget.len(), 1, "no price unless asked: {budget:?}");
    assert_eq!(
        first.instructions()[0].0,
        compute::COMPUTE_BUDGET_PROGRAM_ID
    );

    // The next purchase, predicted: the same instructions simulated here now use exactly the
    // units the command line then measures and asks for (plus the margin).
    let predicted = simulated_units(net, &first).await;
    let second = landed(net, &bought(&w.run_cli(&as_strs(&args)).await)).await;
    assert_eq!(second.consumed, predicted);
    assert_eq!(
        second.limit(),
        Some(compute::limit_from_simulation(predicted))
    );

    // A priority fee is priced per unit of the same simulated limit: the purchase is measured
    // without the price instruction, whose few units the margin covers.
    let args = buy(&["--with-compute-unit-price", "7"]);
    let priced = landed(net, &bought(&w.run_cli(&as_strs(&args)).await)).await;
    assert_eq!(priced.limit(), second.limit());
    assert!(
        priced.consumed > second.consumed,
        "the price instruction ran"
    );
    assert!(priced.limit().map(u64::from) > Some(priced.consumed));
    let ixs = priced.instructions();
    assert_eq!(
        ixs[1],
        (
            compute::COMPUTE_BUDGET_PROGRAM_ID,
            ComputeBudgetInstruction::set_compute_unit_price(7).data
        )
    );
    assert_eq!(ixs[2].0, backhaul::ID);

    // --compute-unit-limit fixes the limit.
    let args = buy(&["--compute-unit-limit", "54321"]);
    let fixed = landed(net, &bought(&w.run_cli(&as_strs(&args)).await)).await;
    assert_eq!(fixed.limit(), Some(54_321));
    assert_ne!(compute::limit_from_simulation(fixed.consumed), 54_321);
    // It must be a limit a transaction may ask for.
    for bad in ["0", "1400001", "many"] {
        let args = buy(&["--compute-unit-limit", bad]);
        let out = w.run_cli(&as_strs(&args)).await;
        assert_eq!(out.status.code(), Some(2), "--compute-unit-limit {bad}");
        assert!(
            stderr(&out).contains("--compute-unit-limit"),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_the_program_refuses_sends_nothing_and_names_the_error() {
    let w = deploy(Net::start(false), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let payer = net.funded().await;
    let ctx = w.ctx(&payer, &[]);
    let lamports = net.lamports(&payer.pubkey()).await;
    // Epoch 0 has not ended: the program refuses to seal it.
    let seal = backhaul_sdk::ix::seal_epoch(&w.d, &payer.pubkey(), 0);
    let e = backhaul_cli::tx::send(&ctx, "seal epoch 0", &[seal], &[])
        .await
        .expect_err("refused");
    match command_error(&e) {
        Some(CommandError::Program { name, code, .. }) => {
            assert_eq!((name.as_str(), *code), ("EpochNotEnded", 6018), "{e:#}")
        }
        other => panic!("expected the program's error, got {other:?}: {e:#}"),
    }
    assert!(
        format!("{e:#}").contains("The epoch has not ended yet"),
        "{e:#}"
    );
    assert_eq!(net.lamports(&payer.pubkey()).await, lamports, "no fee paid");
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

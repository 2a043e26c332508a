//! The real `solana_client` nonblocking `RpcClient` against the endpoint, end to end.

use crate::common::*;
use backhaul_localnet::LocalnetConfig;
use serde_json::{json, Value};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcSendTransactionConfig,
    RpcSimulateTransactionConfig, RpcTransactionConfig, UiAccountEncoding, UiTransactionEncoding,
};
use solana_client::rpc_filter::{Memcmp, RpcFilterType};
use solana_client::rpc_request::RpcRequest;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::clock::Clock;
use solana_sdk::instruction::InstructionError;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};
use spl_associated_token_account_interface::address::get_associated_token_address;
use spl_associated_token_account_interface::instruction::create_associated_token_account;
use std::time::Duration;

async fn signed(
    client: &RpcClient,
    ixs: &[solana_sdk::instruction::Instruction],
    payer: &Keypair,
    signers: &[&Keypair],
) -> Transaction {
    let blockhash = client.get_latest_blockhash().await.expect("blockhash");
    let mut keys: Vec<&Keypair> = vec![payer];
    keys.extend_from_slice(signers);
    Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash)
}

async fn confirm(client: &RpcClient, sig: &Signature) {
    for _ in 0..50 {
        if client
            .confirm_transaction_with_commitment(sig, CommitmentConfig::finalized())
            .await
            .expect("confirm")
            .value
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{sig} not confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_client_end_to_end() {
    let net = start_with(LocalnetConfig {
        unix_timestamp: Some(1_750_000_000),
        ..Default::default()
    });
    let client = RpcClient::new_with_commitment(net.url(), CommitmentConfig::confirmed());

    // Cluster facts.
    assert!(client
        .get_version()
        .await
        .unwrap()
        .solana_core
        .starts_with("3."));
    client.get_health().await.expect("healthy");
    assert_eq!(client.get_genesis_hash().await.unwrap(), net.genesis_hash());
    let slot0 = client.get_slot().await.unwrap();
    let epoch = client.get_epoch_info().await.unwrap();
    assert_eq!(epoch.absolute_slot, slot0);
    assert_eq!(client.get_block_height().await.unwrap(), epoch.block_height);

    // Airdrop.
    let payer = Keypair::new();
    let sig = client
        .request_airdrop(&payer.pubkey(), 10_000_000_000)
        .await
        .expect("airdrop");
    confirm(&client, &sig).await;
    assert_eq!(
        client.get_balance(&payer.pubkey()).await.unwrap(),
        10_000_000_000
    );
    assert!(client.get_slot().await.unwrap() > slot0);

    // A mint, two ATAs (the real SBF ATA program), minting and a transfer.
    let mint = Keypair::new();
    let bob = Keypair::new();
    let rent = client
        .get_minimum_balance_for_rent_exemption(spl_token_interface::state::Mint::LEN)
        .await
        .unwrap();
    assert_eq!(rent, rent_exempt(spl_token_interface::state::Mint::LEN));
    let ixs = create_mint_ixs(&payer.pubkey(), &mint.pubkey(), &payer.pubkey());
    let tx = signed(&client, &ixs, &payer, &[&mint]).await;
    client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("create mint");

    let payer_ata = get_associated_token_address(&payer.pubkey(), &mint.pubkey());
    let bob_ata = get_associated_token_address(&bob.pubkey(), &mint.pubkey());
    let ixs = [
        create_associated_token_account(
            &payer.pubkey(),
            &payer.pubkey(),
            &mint.pubkey(),
            &spl_token_interface::ID,
        ),
        create_associated_token_account(
            &payer.pubkey(),
            &bob.pubkey(),
            &mint.pubkey(),
            &spl_token_interface::ID,
        ),
        mint_to(&mint.pubkey(), &payer_ata, &payer.pubkey(), 5_000_000),
    ];
    let tx = signed(&client, &ixs, &payer, &[]).await;
    let sig = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("atas");

    let ix = spl_token_interface::instruction::transfer_checked(
        &spl_token_interface::ID,
        &payer_ata,
        &mint.pubkey(),
        &bob_ata,
        &payer.pubkey(),
        &[],
        1_250_000,
        DECIMALS,
    )
    .unwrap();
    let tx = signed(&client, &[cu_price(10), ix], &payer, &[]).await;
    let transfer_sig = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("transfer");

    let bob_balance = client.get_token_account_balance(&bob_ata).await.unwrap();
    assert_eq!(bob_balance.amount, "1250000");
    assert_eq!(bob_balance.decimals, DECIMALS);
    assert_eq!(bob_balance.ui_amount, Some(1.25));
    assert_eq!(bob_balance.ui_amount_string, "1.25");
    assert_eq!(
        client
            .get_token_account_balance(&payer_ata)
            .await
            .unwrap()
            .amount,
        "3750000"
    );
    let account = client.get_account(&bob_ata).await.unwrap();
    let state = spl_token_interface::state::Account::unpack(&account.data).unwrap();
    assert_eq!(state.amount, 1_250_000);
    assert_eq!(state.owner, bob.pubkey());

    // getProgramAccounts with filters: both ATAs of the mint, then only bob's.
    let by_mint = RpcProgramAccountsConfig {
        filters: Some(vec![
            RpcFilterType::DataSize(165),
            RpcFilterType::Memcmp(Memcmp::new_base58_encoded(0, mint.pubkey().as_ref())),
        ]),
        account_config: RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            ..Default::default()
        },
        ..Default::default()
    };
    let found = client
        .get_program_accounts_with_config(&spl_token_interface::ID, by_mint.clone())
        .await
        .unwrap();
    let mut keys: Vec<Pubkey> = found.iter().map(|(k, _)| *k).collect();
    keys.sort();
    let mut expected = vec![payer_ata, bob_ata];
    expected.sort();
    assert_eq!(keys, expected);
    let mut by_owner = by_mint;
    by_owner
        .filters
        .as_mut()
        .unwrap()
        .push(RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
            32,
            bob.pubkey().as_ref(),
        )));
    let found = client
        .get_program_accounts_with_config(&spl_token_interface::ID, by_owner)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, bob_ata);
    let accounts = client
        .get_multiple_accounts(&[bob_ata, Pubkey::new_unique()])
        .await
        .unwrap();
    assert!(accounts[0].is_some() && accounts[1].is_none());

    // Statuses, history and the transaction with its metadata.
    let statuses = client
        .get_signature_statuses_with_history(&[sig, transfer_sig, Signature::default()])
        .await
        .unwrap()
        .value;
    assert!(statuses[0].as_ref().unwrap().err.is_none());
    assert!(statuses[1]
        .as_ref()
        .unwrap()
        .satisfies_commitment(CommitmentConfig::finalized()));
    assert!(statuses[2].is_none());
    let confirmed = client
        .get_transaction_with_config(
            &transfer_sig,
            RpcTransactionConfig {
                encoding: Some(UiTransactionEncoding::Json),
                commitment: Some(CommitmentConfig::confirmed()),
                max_supported_transaction_version: Some(0),
            },
        )
        .await
        .unwrap();
    let meta = confirmed.transaction.meta.expect("meta");
    assert!(meta.err.is_none());
    let logs: Option<Vec<String>> = meta.log_messages.into();
    let logs = logs.expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.contains("Instruction: TransferChecked")),
        "{logs:?}"
    );
    let post: Option<Vec<_>> = meta.post_token_balances.into();
    assert_eq!(post.expect("post token balances").len(), 2);
    let decoded = confirmed.transaction.transaction.decode();
    assert!(decoded.is_none(), "json encoding is not binary");
    let fees = client
        .get_recent_prioritization_fees(&[bob_ata])
        .await
        .unwrap();
    assert!(fees.iter().any(|f| f.prioritization_fee == 10), "{fees:?}");

    // Simulation.
    let ix = token_transfer(&payer_ata, &bob_ata, &payer.pubkey(), 1);
    let tx = signed(&client, &[ix], &payer, &[]).await;
    let sim = client
        .simulate_transaction_with_config(
            &tx,
            RpcSimulateTransactionConfig {
                sig_verify: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .value;
    assert!(sim.err.is_none(), "{sim:?}");
    assert!(sim.units_consumed.unwrap() > 0);
    assert!(client
        .is_blockhash_valid(&tx.message.recent_blockhash, CommitmentConfig::processed())
        .await
        .unwrap());

    // A failing transfer: preflight rejects it with the token program's error...
    let ix = token_transfer(&payer_ata, &bob_ata, &payer.pubkey(), 999_999_999);
    let tx = signed(&client, &[ix], &payer, &[]).await;
    let err = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect_err("insufficient funds");
    assert_eq!(
        err.get_transaction_error(),
        Some(TransactionError::InstructionError(
            0,
            InstructionError::Custom(1)
        )),
        "{err:?}"
    );
    // ...and without preflight it lands as a failed transaction.
    let sig = client
        .send_transaction_with_config(
            &tx,
            RpcSendTransactionConfig {
                skip_preflight: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let status = client.get_signature_status(&sig).await.unwrap();
    assert_eq!(
        status,
        Some(Err(TransactionError::InstructionError(
            0,
            InstructionError::Custom(1)
        )))
    );

    // Clock warp (extra method, through RpcClient's generic `send`), then more transactions.
    let read_clock = |account: solana_sdk::account::Account| -> Clock {
        bincode::deserialize(&account.data).expect("clock")
    };
    let clock_id = solana_sdk::sysvar::clock::ID;
    let before = read_clock(client.get_account(&clock_id).await.unwrap());
    assert_eq!(before.unix_timestamp, 1_750_000_000);
    let warped: Value = client
        .send(
            RpcRequest::Custom {
                method: "backhaulWarpClock",
            },
            json!([{"advanceSeconds": 86_400}]),
        )
        .await
        .unwrap();
    assert_eq!(warped["unixTimestamp"], 1_750_086_400);
    let after = read_clock(client.get_account(&clock_id).await.unwrap());
    assert_eq!(after.unix_timestamp, 1_750_086_400);
    assert!(after.slot > before.slot);
    let ix = token_transfer(&payer_ata, &bob_ata, &payer.pubkey(), 250_000);
    let tx = signed(&client, &[ix], &payer, &[]).await;
    client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("transfer after warp");
    assert_eq!(
        client
            .get_token_account_balance(&bob_ata)
            .await
            .unwrap()
            .amount,
        "1500000"
    );
    // The blockhash changes with every transaction: the same instruction twice is two
    // transactions.
    let ix = transfer(&payer.pubkey(), &bob.pubkey(), 1_000_000_000);
    let tx1 = signed(&client, std::slice::from_ref(&ix), &payer, &[]).await;
    client.send_and_confirm_transaction(&tx1).await.unwrap();
    let tx2 = signed(&client, &[ix], &payer, &[]).await;
    assert_ne!(tx1.signatures[0], tx2.signatures[0]);
    client.send_and_confirm_transaction(&tx2).await.unwrap();
    assert_eq!(
        client.get_balance(&bob.pubkey()).await.unwrap(),
        2_000_000_000
    );
    net.shutdown();
}

//! The Backhaul program behind the endpoint: `initialize` sent through `RpcClient`.

use crate::common::*;
use anchor_lang::{AccountDeserialize, Discriminator, InstructionData, ToAccountMetas};
use backhaul::instructions::InitializeParams;
use backhaul::state::{Config, ConsensusParams, EconomicsParams, EmissionParams, PriceFeed};
use backhaul_localnet::{LocalnetConfig, PROGRAM_ID};
use serde_json::json;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, UiAccountEncoding,
};
use solana_client::rpc_filter::{Memcmp, RpcFilterType};
use solana_commitment_config::CommitmentConfig;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};
use spl_associated_token_account_interface::address::get_associated_token_address;
use spl_associated_token_account_interface::instruction::create_associated_token_account;

const GENESIS: i64 = 1_700_000_000;

fn pda(seeds: &[&[u8]]) -> Pubkey {
    Pubkey::find_program_address(seeds, &PROGRAM_ID).0
}

fn initialize_ix(initializer: &Pubkey, mint: &Pubkey, params: InitializeParams) -> Instruction {
    let config = pda(&[backhaul::constants::CONFIG_SEED, mint.as_ref()]);
    Instruction {
        program_id: PROGRAM_ID,
        accounts: backhaul::accounts::Initialize {
            initializer: *initializer,
            program_data: backhaul_localnet::program_data_address(),
            config,
            mint: *mint,
            price_feed: pda(&[backhaul::constants::PRICE_SEED, config.as_ref()]),
            vault: pda(&[backhaul::constants::VAULT_SEED, config.as_ref()]),
            token_program: spl_token_interface::ID,
            system_program: solana_system_interface::program::ID,
            event_authority: pda(&[b"__event_authority"]),
            program: PROGRAM_ID,
        }
        .to_account_metas(None),
        data: backhaul::instruction::Initialize { params }.data(),
    }
}

fn params(admin: Pubkey, guardian: Pubkey, oracles: Vec<Pubkey>) -> InitializeParams {
    let unit = 10u64.pow(DECIMALS as u32);
    InitializeParams {
        admin,
        guardians: vec![guardian],
        oracles,
        threshold: 2,
        genesis_ts: GENESIS,
        epoch_length_secs: 86_400,
        challenge_period_secs: 6 * 3_600,
        governance_delay_secs: 2 * 86_400,
        emission: EmissionParams {
            initial_per_epoch: 1_000 * unit,
            decay_bps: 5_000,
            decay_period_epochs: 30,
            floor_per_epoch: 10 * unit,
            lifetime_cap: 50_000 * unit,
        },
        rate_window_secs: 86_400,
        rate_capacity: 2_000 * unit,
        economics: EconomicsParams {
            price_max_age_secs: 3_600,
            price_max_change_bps: 2_000,
            net_emissions_cap: 100 * unit,
            burn_smoothing_epochs: 7,
            usage_cap_bps: 10_000,
        },
        consensus: ConsensusParams {
            credits_per_gib: 50_000,
            pair_cap_bytes: 100 << 30,
            max_rate_bytes_per_sec: 1 << 30,
            grace_secs: 300,
        },
    }
}

async fn signed(
    client: &RpcClient,
    ixs: &[Instruction],
    payer: &Keypair,
    signers: &[&Keypair],
) -> Transaction {
    let blockhash = client.get_latest_blockhash().await.expect("blockhash");
    let mut keys: Vec<&Keypair> = vec![payer];
    keys.extend_from_slice(signers);
    Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash)
}

/// The network token: a mint created by `deployer`, 1,000,000 base units minted to its ATA, and
/// mint authority handed to the config PDA (as `initialize` requires). Returns it and the config.
async fn network_mint(client: &RpcClient, deployer: &Keypair) -> (Keypair, Pubkey) {
    let mint = Keypair::new();
    let config = pda(&[backhaul::constants::CONFIG_SEED, mint.pubkey().as_ref()]);
    let treasury = get_associated_token_address(&deployer.pubkey(), &mint.pubkey());
    let mut ixs = create_mint_ixs(&deployer.pubkey(), &mint.pubkey(), &deployer.pubkey());
    ixs.push(create_associated_token_account(
        &deployer.pubkey(),
        &deployer.pubkey(),
        &mint.pubkey(),
        &spl_token_interface::ID,
    ));
    ixs.push(mint_to(
        &mint.pubkey(),
        &treasury,
        &deployer.pubkey(),
        1_000_000,
    ));
    ixs.push(
        spl_token_interface::instruction::set_authority(
            &spl_token_interface::ID,
            &mint.pubkey(),
            Some(&config),
            spl_token_interface::instruction::AuthorityType::MintTokens,
            &deployer.pubkey(),
            &[],
        )
        .unwrap(),
    );
    let tx = signed(client, &ixs, deployer, &[&mint]).await;
    client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("mint setup");
    (mint, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_through_rpc_client() {
    let upgrade_authority = Keypair::new();
    let net = start_with(LocalnetConfig {
        upgrade_authority: Some(upgrade_authority.pubkey()),
        unix_timestamp: Some(GENESIS),
        ..Default::default()
    });
    assert_eq!(net.upgrade_authority(), upgrade_authority.pubkey());
    let client = RpcClient::new_with_commitment(net.url(), CommitmentConfig::confirmed());
    let rpc = Rpc::new(&net);

    // The program is deployed (a builtin: executable, native loader).
    let program = client
        .get_account(&PROGRAM_ID)
        .await
        .expect("program account");
    assert!(program.executable);

    let deployer = Keypair::new();
    for key in [&upgrade_authority, &deployer] {
        rpc.send_ok(
            &[transfer(
                &net.faucet().pubkey(),
                &key.pubkey(),
                10_000_000_000,
            )],
            net.faucet(),
            &[],
        )
        .await;
    }

    // The network token, created and minted by the deployer, then handed to the config PDA.
    let (mint, config) = network_mint(&client, &deployer).await;
    let mint_state = spl_token_interface::state::Mint::unpack(
        &client.get_account(&mint.pubkey()).await.unwrap().data,
    )
    .unwrap();
    assert_eq!(mint_state.mint_authority, Some(config).into());
    assert_eq!(mint_state.supply, 1_000_000);

    let admin = Keypair::new().pubkey();
    let guardian = Keypair::new().pubkey();
    let oracles: Vec<Pubkey> = (0..3).map(|_| Keypair::new().pubkey()).collect();

    // Anyone but the upgrade authority is refused by the program.
    let ix = initialize_ix(
        &deployer.pubkey(),
        &mint.pubkey(),
        params(admin, guardian, oracles.clone()),
    );
    let tx = signed(&client, &[ix], &deployer, &[]).await;
    let err = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect_err("not the upgrade authority");
    let code = anchor_lang::error::ERROR_CODE_OFFSET
        + backhaul::error::BackhaulError::NotUpgradeAuthority as u32;
    assert_eq!(
        err.get_transaction_error(),
        Some(TransactionError::InstructionError(
            0,
            InstructionError::Custom(code)
        )),
        "{err:?}"
    );

    // The upgrade authority initializes.
    let ix = initialize_ix(
        &upgrade_authority.pubkey(),
        &mint.pubkey(),
        params(admin, guardian, oracles.clone()),
    );
    let tx = signed(&client, std::slice::from_ref(&ix), &upgrade_authority, &[]).await;
    let sig = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("initialize");

    let data = client.get_account(&config).await.expect("config").data;
    let state = Config::try_deserialize(&mut data.as_slice()).expect("a Config");
    assert_eq!(state.admin, admin);
    assert_eq!(state.guardians, vec![guardian]);
    assert_eq!(state.mint, mint.pubkey());
    assert_eq!(state.oracles, oracles);
    assert_eq!(state.threshold, 2);
    assert_eq!(state.genesis_ts, GENESIS);
    let vault = client.get_account(&state.vault).await.expect("vault");
    assert_eq!(vault.owner, spl_token_interface::ID);
    let vault_state = spl_token_interface::state::Account::unpack(&vault.data).unwrap();
    assert_eq!(vault_state.owner, config);
    assert_eq!(vault_state.mint, mint.pubkey());
    let feed = client
        .get_account(&state.price_feed)
        .await
        .expect("price feed");
    assert_eq!(feed.owner, PROGRAM_ID);
    PriceFeed::try_deserialize(&mut feed.data.as_slice()).expect("a PriceFeed");

    // The program's accounts are listed, and a discriminator filter picks the config.
    let all = client.get_program_accounts(&PROGRAM_ID).await.unwrap();
    let mut keys: Vec<Pubkey> = all.iter().map(|(k, _)| *k).collect();
    keys.sort();
    let mut expected = vec![config, state.price_feed];
    expected.sort();
    assert_eq!(keys, expected);
    let configs = client
        .get_program_accounts_with_config(
            &PROGRAM_ID,
            RpcProgramAccountsConfig {
                filters: Some(vec![RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
                    0,
                    Config::DISCRIMINATOR,
                ))]),
                account_config: RpcAccountInfoConfig {
                    encoding: Some(UiAccountEncoding::Base64),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].0, config);

    // The logs in getTransaction show the program ran.
    let got = rpc.ok("getTransaction", json!([sig.to_string()])).await;
    let logs = got["meta"]["logMessages"].to_string();
    assert!(
        logs.contains(&format!("Program {PROGRAM_ID} invoke [1]")),
        "{logs}"
    );
    assert!(logs.contains("Instruction: Initialize"), "{logs}");
    assert!(
        logs.contains(&format!("Program {PROGRAM_ID} success")),
        "{logs}"
    );
    assert!(got["meta"]["err"].is_null());

    // A second initialize of the same mint fails (the config exists).
    let tx = signed(&client, &[ix], &upgrade_authority, &[]).await;
    let err = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect_err("already initialized");
    assert!(
        matches!(
            err.get_transaction_error(),
            Some(TransactionError::InstructionError(0, _))
        ),
        "{err:?}"
    );
    net.shutdown();
}

fn set_paused_ix(authority: &Pubkey, config: &Pubkey, paused: bool) -> Instruction {
    Instruction {
        program_id: PROGRAM_ID,
        accounts: backhaul::accounts::SetPaused {
            authority: *authority,
            config: *config,
            event_authority: pda(&[b"__event_authority"]),
            program: PROGRAM_ID,
        }
        .to_account_metas(None),
        data: backhaul::instruction::SetPaused { paused }.data(),
    }
}

fn lines(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("log lines: {v}"))
        .iter()
        .map(|l| l.as_str().expect("a log line").to_string())
        .collect()
}

fn count(logs: &[String], line: &str) -> usize {
    logs.iter().filter(|l| *l == line).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_inner_instructions_and_units_as_a_validator_reports_them() {
    let upgrade_authority = Keypair::new();
    let net = start_with(LocalnetConfig {
        upgrade_authority: Some(upgrade_authority.pubkey()),
        unix_timestamp: Some(GENESIS),
        ..Default::default()
    });
    let client = RpcClient::new_with_commitment(net.url(), CommitmentConfig::confirmed());
    let rpc = Rpc::new(&net);
    let admin = Keypair::new();
    let guardian = Keypair::new();
    for key in [&upgrade_authority, &admin, &guardian] {
        rpc.send_ok(
            &[transfer(
                &net.faucet().pubkey(),
                &key.pubkey(),
                10_000_000_000,
            )],
            net.faucet(),
            &[],
        )
        .await;
    }
    let (mint, config) = network_mint(&client, &upgrade_authority).await;
    let oracles: Vec<Pubkey> = (0..3).map(|_| Keypair::new().pubkey()).collect();
    let ix = initialize_ix(
        &upgrade_authority.pubkey(),
        &mint.pubkey(),
        params(admin.pubkey(), guardian.pubkey(), oracles),
    );
    let tx = signed(&client, &[ix], &upgrade_authority, &[]).await;
    client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("initialize");

    // set_paused emits its event through a CPI into the program itself (one inner invocation);
    // a system transfer follows, so that compute units are counted however the program is built.
    let invoke_1 = format!("Program {PROGRAM_ID} invoke [1]");
    let invoke_2 = format!("Program {PROGRAM_ID} invoke [2]");
    let success = format!("Program {PROGRAM_ID} success");
    let ixs = [
        set_paused_ix(&admin.pubkey(), &config, true),
        transfer(&admin.pubkey(), &Keypair::new().pubkey(), 1_000_000_000),
    ];
    let tx = signed(&client, &ixs, &admin, &[]).await;
    let program_index = tx
        .message
        .account_keys
        .iter()
        .position(|k| *k == PROGRAM_ID)
        .expect("the program is in the message");

    let sim = rpc
        .ok(
            "simulateTransaction",
            json!([b64(&tx), {"encoding": "base64", "sigVerify": true, "innerInstructions": true}]),
        )
        .await;
    let sim = &sim["value"];
    assert!(sim["err"].is_null(), "{sim}");
    let sim_logs = lines(&sim["logs"]);
    assert_eq!(count(&sim_logs, &invoke_1), 1, "{sim_logs:#?}");
    assert_eq!(count(&sim_logs, &invoke_2), 1, "{sim_logs:#?}");
    assert_eq!(count(&sim_logs, &success), 2, "{sim_logs:#?}");
    assert_eq!(
        count(
            &sim_logs,
            "Program 11111111111111111111111111111111 invoke [1]"
        ),
        1
    );
    assert_validator_shaped(&sim_logs);
    let units = sim["unitsConsumed"].as_u64().expect("unitsConsumed");
    assert!(units > 0, "{sim}");
    assert!(sim["returnData"].is_null(), "{sim}");
    let inner = sim["innerInstructions"].clone();
    let inner_ixs = inner[0]["instructions"]
        .as_array()
        .expect("inner instructions");
    assert_eq!(inner.as_array().map(Vec::len), Some(1), "{inner}");
    assert_eq!(inner[0]["index"], 0, "{inner}");
    assert_eq!(inner_ixs.len(), 1, "{inner}");
    assert_eq!(inner_ixs[0]["programIdIndex"], program_index, "{inner}");
    assert_eq!(inner_ixs[0]["stackHeight"], 2, "{inner}");

    let sig = client
        .send_and_confirm_transaction(&tx)
        .await
        .expect("set_paused");
    let got = rpc
        .ok("getTransaction", json!([sig.to_string(), "json"]))
        .await;
    let meta = &got["meta"];
    assert!(meta["err"].is_null(), "{meta}");
    let logs = lines(&meta["logMessages"]);
    assert_eq!(logs, sim_logs, "execution logs as the simulation's");
    assert_eq!(count(&logs, &invoke_1), 1, "{logs:#?}");
    assert_eq!(count(&logs, &invoke_2), 1, "{logs:#?}");
    assert_eq!(meta["computeUnitsConsumed"].as_u64(), Some(units), "{meta}");
    assert_eq!(meta["innerInstructions"], inner, "{meta}");

    // A failing host-program instruction: one `failed` line, not the shim's two.
    let tx = signed(
        &client,
        &[set_paused_ix(&guardian.pubkey(), &config, false)],
        &guardian,
        &[],
    )
    .await;
    let sim = rpc
        .ok(
            "simulateTransaction",
            json!([b64(&tx), {"encoding": "base64"}]),
        )
        .await;
    let logs = lines(&sim["value"]["logs"]);
    let failed: Vec<&String> = logs
        .iter()
        .filter(|l| l.starts_with(&format!("Program {PROGRAM_ID} failed: ")))
        .collect();
    assert_eq!(failed.len(), 1, "{logs:#?}");
    assert_eq!(count(&logs, &invoke_1), 1, "{logs:#?}");
    assert_validator_shaped(&logs);
    assert!(!sim["value"]["err"].is_null());
    net.shutdown();
}

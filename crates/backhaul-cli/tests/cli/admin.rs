//! `backhaul admin`: init (idempotent, refusing other parameters), every administrative command,
//! the signer checked before sending, and program errors named.

use crate::common::*;
use backhaul_cli::admin::{self, InitArgs, SetOraclesArgs, SetParamsArgs};
use backhaul_cli::error::{command_error, CommandError};
use backhaul_cli::tx;
use backhaul_sdk::ix;
use backhaul_sdk::state::Config;
use solana_sdk::signature::{Keypair, Signer};

async fn config_of(w: &Deployed) -> Config {
    w.net.account::<Config>(&w.d.config).await.expect("config")
}

fn wrong_keypair(e: &anyhow::Error, role: &str) {
    match command_error(e) {
        Some(CommandError::WrongKeypair { role: r, .. }) => assert_eq!(r, role, "{e:#}"),
        other => panic!("expected a wrong-keypair error for {role}, got {other:?}: {e:#}"),
    }
    assert!(format!("{e:#}").starts_with("wrong keypair: "), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_twice_changes_nothing_and_other_parameters_are_refused() {
    let w = deploy(Net::start(false), 0, 600).await;
    let net = &w.net;
    assert!(!w.init.already_initialized && w.init.created_mint);
    assert_eq!(w.init.signatures.len(), 2, "mint, then initialize");
    // genesis_ts = 0 means the chain's clock.
    assert_eq!(w.init.genesis_ts, START);
    let config: Config = net.account(&w.d.config).await.expect("config");
    assert_eq!(config.admin, w.admin.pubkey());
    assert_eq!(config.initial_supply, 1_000_000 * TOKEN);
    assert_eq!(
        net.token_balance(&w.d.ata(&w.treasury.pubkey())).await,
        1_000_000 * TOKEN
    );

    // The same file and mint keypair again: nothing is sent, the account is byte for byte the same.
    let authority = net.authority();
    let ctx = net.ctx(&authority, None, &[]);
    let before = net.account_data(&w.d.config).await;
    let lamports = net.lamports(&authority.pubkey()).await;
    let args = deployment_init(net, &w.params_path, &w.treasury.pubkey());
    let again = admin::initialize(&ctx, &args).await.expect("second init");
    assert!(again.already_initialized);
    assert!(!again.created_mint);
    assert!(again.signatures.is_empty());
    assert_eq!(again.config, w.d.config.to_string());
    assert_eq!(net.account_data(&w.d.config).await, before);
    assert_eq!(net.lamports(&authority.pubkey()).await, lamports);

    // By --mint, without creating anything: also already initialized.
    let by_mint = net.ctx(&authority, Some(&w.mint), &[]);
    let o = admin::initialize(&by_mint, &InitArgs::for_file(&w.params_path))
        .await
        .expect("init by mint");
    assert!(o.already_initialized);

    // Other parameters: refused with what differs, nothing changes.
    let other = params_toml(&Params {
        admin: w.admin.pubkey(),
        guardian: w.guardian.pubkey(),
        oracles: w.oracles.iter().map(|o| o.pubkey()).collect(),
        threshold: 3,
        genesis_ts: 0,
        price_max_age_secs: 900,
    });
    let other_path = net.write("other.toml", &other);
    let e = admin::initialize(&by_mint, &InitArgs::for_file(&other_path))
        .await
        .expect_err("different parameters are refused");
    match command_error(&e) {
        Some(CommandError::InitializedDifferently { differences, .. }) => {
            assert_eq!(differences.len(), 2, "{differences:?}");
            assert!(differences[0].starts_with("threshold is 2 on-chain but 3"));
            assert!(differences[1].starts_with("economics"));
        }
        other => panic!("expected InitializedDifferently, got {other:?}"),
    }
    assert_eq!(net.account_data(&w.d.config).await, before);
    assert_eq!(net.lamports(&authority.pubkey()).await, lamports);

    // The binary: the same refusal exits non-zero; the same file prints "already initialized".
    let keypair = net.keypair_file("authority", &authority);
    let mint = w.mint.to_string();
    let url = net.url();
    let common = |file: &str| {
        vec![
            "admin".to_string(),
            "init".into(),
            file.into(),
            "--url".into(),
            url.clone(),
            "--keypair".into(),
            path_str(&keypair),
            "--mint".into(),
            mint.clone(),
        ]
    };
    let refused = run_binary_async(common(&path_str(&other_path))).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("already initialized with different parameters"),
        "{}",
        stderr(&refused)
    );
    let same = run_binary_async(common(&path_str(&w.params_path))).await;
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(
        stdout(&same).starts_with("already initialized"),
        "{}",
        stdout(&same)
    );
    let mut json_args = common(&path_str(&w.params_path));
    json_args.extend(["--output".into(), "json".into()]);
    let out = run_binary_async(json_args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["already_initialized"], true);
    assert_eq!(v["config"], w.d.config.to_string());
    assert_eq!(net.account_data(&w.d.config).await, before);

    // Someone else than the upgrade authority cannot initialize a new deployment; nothing is
    // sent (not even the mint).
    let stranger = net.funded().await;
    let lamports = net.lamports(&stranger.pubkey()).await;
    let e = admin::initialize(
        &net.ctx(&stranger, None, &[]),
        &init_creating_mint(&w.params_path),
    )
    .await
    .expect_err("not the upgrade authority");
    wrong_keypair(&e, "program's upgrade authority");
    assert_eq!(net.lamports(&stranger.pubkey()).await, lamports);

    // Parameters out of the program's bounds are refused before anything is sent.
    let authority_lamports = net.lamports(&authority.pubkey()).await;
    for (threshold, age, says) in [(1, 600, "more than half"), (2, 10, "(InvalidEconomics)")] {
        let bad = net.write(
            "bad.toml",
            &params_toml(&Params {
                admin: w.admin.pubkey(),
                guardian: w.guardian.pubkey(),
                oracles: w.oracles.iter().map(|o| o.pubkey()).collect(),
                threshold,
                genesis_ts: 0,
                price_max_age_secs: age,
            }),
        );
        let e = admin::initialize(&ctx, &init_creating_mint(bad))
            .await
            .expect_err("out of bounds");
        assert!(format!("{e:#}").contains(says), "{says}: {e:#}");
    }
    assert_eq!(net.lamports(&authority.pubkey()).await, authority_lamports);

    // --mint and --create-mint naming different mints.
    let e = admin::initialize(&by_mint, &init_creating_mint(&w.params_path))
        .await
        .expect_err("two mints");
    assert!(format!("{e}").contains("--create-mint disagree"), "{e}");

    // A placeholder left in the file says so.
    let placeholder = net.write(
        "placeholder.toml",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/initial-params.toml"
        ))
        .expect("template"),
    );
    let e = admin::initialize(&by_mint, &InitArgs::for_file(&placeholder))
        .await
        .expect_err("placeholders are refused");
    assert!(
        format!("{e:#}").contains("replace the placeholder"),
        "{e:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_checks_its_signer_before_sending() {
    let w = deploy(Net::start(false), START, 600).await;
    let net = &w.net;
    let admin_ctx = w.ctx(&w.admin, &[]);
    let stranger = net.funded().await;
    let stranger_ctx = w.ctx(&stranger, &[]);
    let stranger_lamports = net.lamports(&stranger.pubkey()).await;

    // set-params: the stranger is refused before sending; the admin changes two values.
    let args = SetParamsArgs {
        challenge_period_secs: Some(900),
        price_max_age_secs: Some(1_200),
        ..SetParamsArgs::default()
    };
    wrong_keypair(
        &admin::set_params(&stranger_ctx, &args).await.unwrap_err(),
        "admin",
    );
    let o = admin::set_params(&admin_ctx, &args)
        .await
        .expect("set-params");
    assert_eq!(o.changes.len(), 2, "{:?}", o.changes);
    let c = config_of(&w).await;
    assert_eq!(c.challenge_period_secs, 900);
    assert_eq!(c.economics.price_max_age_secs, 1_200);
    assert_eq!(c.economics.price_max_change_bps, 2_000, "the rest is kept");
    let e = admin::set_params(&admin_ctx, &args).await.unwrap_err();
    assert!(format!("{e}").starts_with("nothing to change"), "{e}");
    // A value out of the program's bounds: the program's error, named, with a hint.
    let e = admin::set_params(
        &admin_ctx,
        &SetParamsArgs {
            challenge_period_secs: Some(5),
            ..SetParamsArgs::default()
        },
    )
    .await
    .unwrap_err();
    match command_error(&e) {
        Some(CommandError::Program { name, code, .. }) => {
            assert_eq!((name.as_str(), *code), ("InvalidChallengePeriod", 6013))
        }
        other => panic!("expected the program's error, got {other:?}: {e:#}"),
    }
    assert!(format!("{e}").contains("docs/parameters.md"), "{e}");

    // set-oracles: checked locally, then by signer.
    let new_oracles: Vec<Keypair> = (0..4).map(|_| Keypair::new()).collect();
    let keys: Vec<String> = new_oracles.iter().map(|k| k.pubkey().to_string()).collect();
    let e = admin::set_oracles(
        &admin_ctx,
        &SetOraclesArgs {
            oracles: keys.clone(),
            threshold: 2,
        },
    )
    .await
    .unwrap_err();
    assert!(format!("{e}").contains("more than half"), "{e}");
    let set = SetOraclesArgs {
        oracles: keys.clone(),
        threshold: 3,
    };
    wrong_keypair(
        &admin::set_oracles(&stranger_ctx, &set).await.unwrap_err(),
        "admin",
    );
    admin::set_oracles(&admin_ctx, &set)
        .await
        .expect("set-oracles");
    let c = config_of(&w).await;
    assert_eq!(
        c.oracles,
        new_oracles.iter().map(|k| k.pubkey()).collect::<Vec<_>>()
    );
    assert_eq!(c.threshold, 3);

    // set-guardian.
    let guardian = net.funded().await;
    wrong_keypair(
        &admin::set_guardian(&stranger_ctx, &guardian.pubkey())
            .await
            .unwrap_err(),
        "admin",
    );
    admin::set_guardian(&admin_ctx, &guardian.pubkey())
        .await
        .expect("set-guardian");
    assert_eq!(config_of(&w).await.guardian, guardian.pubkey());

    // Every transaction starts with the compute-unit limit and, when asked, the price.
    let priced = backhaul_cli::Context::with_signer(
        &backhaul_cli::context::GlobalArgs {
            compute_unit_limit: Some(150_000),
            compute_unit_price: Some(5_000),
            ..net.args(Some(&w.mint), &[])
        },
        w.admin.insecure_clone(),
    )
    .expect("context");
    let o = admin::set_guardian(&priced, &guardian.pubkey())
        .await
        .expect("set-guardian again");
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [o.signature, {"encoding": "json"}]});
    let tx: serde_json::Value = net
        .http
        .post(net.url())
        .json(&body)
        .send()
        .await
        .expect("getTransaction")
        .json()
        .await
        .expect("json");
    let message = &tx["result"]["transaction"]["message"];
    let keys: Vec<&str> = message["accountKeys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key"))
        .collect();
    let ixs = message["instructions"].as_array().expect("instructions");
    let budget = solana_compute_budget_interface::ID.to_string();
    let decoded: Vec<(String, Vec<u8>)> = ixs
        .iter()
        .map(|ix| {
            let program = keys[ix["programIdIndex"].as_u64().expect("index") as usize];
            let data = bs58::decode(ix["data"].as_str().expect("data"))
                .into_vec()
                .expect("base58");
            (program.to_string(), data)
        })
        .collect();
    use solana_compute_budget_interface::ComputeBudgetInstruction;
    assert_eq!(decoded.len(), 3, "{decoded:?}");
    assert_eq!(
        decoded[0],
        (
            budget.clone(),
            ComputeBudgetInstruction::set_compute_unit_limit(150_000).data
        )
    );
    assert_eq!(
        decoded[1],
        (
            budget,
            ComputeBudgetInstruction::set_compute_unit_price(5_000).data
        )
    );
    assert_eq!(decoded[2].0, backhaul::ID.to_string());

    // pause / unpause: the guardian may pause but not unpause.
    let guardian_ctx = w.ctx(&guardian, &[]);
    wrong_keypair(
        &admin::set_paused(&stranger_ctx, true).await.unwrap_err(),
        "admin or guardian",
    );
    admin::set_paused(&guardian_ctx, true)
        .await
        .expect("guardian pauses");
    assert!(config_of(&w).await.paused);
    let e = admin::set_paused(&admin_ctx, true).await.unwrap_err();
    assert!(format!("{e}").contains("already paused"), "{e}");
    wrong_keypair(
        &admin::set_paused(&guardian_ctx, false).await.unwrap_err(),
        "admin",
    );
    admin::set_paused(&admin_ctx, false)
        .await
        .expect("admin unpauses");
    assert!(!config_of(&w).await.paused);

    // The program's own refusal, when a transaction gets past no check of ours, is named.
    let e = tx::send(
        &stranger_ctx,
        "pause",
        &[ix::set_paused(&w.d, &stranger.pubkey(), true)],
        &[],
    )
    .await
    .unwrap_err();
    match command_error(&e) {
        Some(CommandError::Program {
            name,
            message,
            hint,
            ..
        }) => {
            assert_eq!(name, "NotAdminOrGuardian");
            assert_eq!(message, "The signer is neither the admin nor the guardian");
            assert!(hint.as_deref().unwrap_or("").contains("admin show"));
        }
        other => panic!("expected the program's error, got {other:?}: {e:#}"),
    }
    let lamports_after_failed_tx = net.lamports(&stranger.pubkey()).await;
    assert_eq!(
        lamports_after_failed_tx, stranger_lamports,
        "every refusal above happened before sending (preflight failures cost nothing)"
    );

    // propose-admin / accept-admin.
    let next = net.funded().await;
    let next_ctx = w.ctx(&next, &[]);
    let e = admin::accept_admin(&next_ctx).await.unwrap_err();
    assert!(
        format!("{e}").contains("no admin transfer is pending"),
        "{e}"
    );
    wrong_keypair(
        &admin::propose_admin(&stranger_ctx, &next.pubkey())
            .await
            .unwrap_err(),
        "admin",
    );
    admin::propose_admin(&admin_ctx, &next.pubkey())
        .await
        .expect("propose");
    assert_eq!(config_of(&w).await.pending_admin, Some(next.pubkey()));
    wrong_keypair(
        &admin::accept_admin(&stranger_ctx).await.unwrap_err(),
        "pending admin",
    );
    admin::accept_admin(&next_ctx).await.expect("accept");
    let c = config_of(&w).await;
    assert_eq!((c.admin, c.pending_admin), (next.pubkey(), None));
    // The old admin is no longer one.
    wrong_keypair(
        &admin::set_paused(&admin_ctx, false).await.unwrap_err(),
        "admin",
    );

    // show, through the library and the binary's JSON.
    let v = admin::show(&stranger_ctx).await.expect("show");
    assert_eq!(v.admin, next.pubkey().to_string());
    assert_eq!(v.guardian, guardian.pubkey().to_string());
    assert_eq!(v.threshold, 3);
    assert_eq!(v.challenge_period_secs, 900);
    assert_eq!(v.current_epoch, 0);
    assert_eq!(v.totals.supply, 1_000_000 * TOKEN);
    assert_eq!(v.price.credits_per_token, 0);
    let out = w.run_cli(&["admin", "show", "-o", "json-compact"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "compact JSON is one line");
    let v = json(&out);
    assert_eq!(v["admin"], next.pubkey().to_string());
    assert_eq!(v["oracles"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["economics"]["price_max_age_secs"], 1_200);
    // The same for people.
    let out = w.run_cli(&["admin", "show"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        format!("Deployment {}", w.d.config),
        format!("  admin             {}", next.pubkey()),
        "  paused            no".to_string(),
        "  price             none posted yet".to_string(),
        "  supply            1000000 (initial 1000000)".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} in\n{text}");
    }

    // The binary refuses the wrong keypair with exit code 1 and the sentence.
    let stranger_file = net.keypair_file("stranger", &stranger);
    let out = w
        .run_cli(&["admin", "pause", "--keypair", &path_str(&stranger_file)])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "wrong keypair: {} is not the admin or guardian",
            stranger.pubkey()
        )),
        "{}",
        stderr(&out)
    );

    // set-params --from-file: the file's challenge period and economics come back, the rest of
    // the file (already equal) changes nothing.
    let o = admin::set_params(
        &next_ctx,
        &SetParamsArgs {
            from_file: Some(w.params_path.clone()),
            ..SetParamsArgs::default()
        },
    )
    .await
    .expect("set-params from the file");
    assert_eq!(o.changes.len(), 2, "{:?}", o.changes);
    let c = config_of(&w).await;
    assert_eq!(c.challenge_period_secs, CHALLENGE_SECS);
    assert_eq!(c.economics.price_max_age_secs, 600);
}

//! `backhaul admin` and `backhaul guardian`: init (idempotent, refusing other parameters),
//! governance changes queued, applied after the delay or cancelled, vetoes and bounded pauses,
//! the signer checked before sending, and program errors named.

use crate::common::*;
use backhaul_cli::admin::{self, InitArgs, QueueGuardiansArgs, QueueOraclesArgs, QueueParamsArgs};
use backhaul_cli::error::{command_error, CommandError};
use backhaul_cli::guardian;
use backhaul_cli::tx;
use backhaul_sdk::ix;
use backhaul_sdk::state::{Config, EpochRecord, EpochStatus, PendingChange};
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
        guardians: vec![w.guardian.pubkey()],
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
                guardians: vec![w.guardian.pubkey()],
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
    // A governance delay shorter than an epoch plus the challenge period, and a guardian that
    // is also an oracle: refused before sending too.
    let good = std::fs::read_to_string(&w.params_path).expect("params");
    let short_delay = good.replace(
        &format!("governance_delay_secs = {GOVERNANCE_DELAY_SECS}"),
        &format!("governance_delay_secs = {}", GOVERNANCE_DELAY_SECS - 1),
    );
    assert_ne!(short_delay, good);
    let e = admin::initialize(
        &ctx,
        &init_creating_mint(net.write("short.toml", &short_delay)),
    )
    .await
    .expect_err("delay too short");
    assert!(
        format!("{e:#}").contains("(InvalidGovernanceDelay)"),
        "{e:#}"
    );
    let overlapping = params_toml(&Params {
        admin: w.admin.pubkey(),
        guardians: vec![w.oracles[0].pubkey()],
        oracles: w.oracles.iter().map(|o| o.pubkey()).collect(),
        threshold: 2,
        genesis_ts: 0,
        price_max_age_secs: 600,
    });
    let e = admin::initialize(
        &ctx,
        &init_creating_mint(net.write("overlap.toml", &overlapping)),
    )
    .await
    .expect_err("roles overlap");
    assert!(
        format!("{e:#}").contains("is both a guardian and an oracle"),
        "{e:#}"
    );
    // k out of 1..=10000 basis points: no value turns the paid-usage cap off.
    for k in [0, 10_001] {
        let bad_k = good.replace("usage_cap_bps = 10000", &format!("usage_cap_bps = {k}"));
        assert_ne!(bad_k, good);
        let e = admin::initialize(&ctx, &init_creating_mint(net.write("k.toml", &bad_k)))
            .await
            .expect_err("k out of bounds");
        assert!(
            format!("{e:#}").contains(&format!(
                "economics.usage_cap_bps {k} is out of bounds: k is 1 to 10000"
            )) && format!("{e:#}").contains("no value turns the cap off"),
            "{e:#}"
        );
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

fn program_error(e: &anyhow::Error) -> (String, u32, String, String) {
    match command_error(e) {
        Some(CommandError::Program {
            name,
            code,
            message,
            hint,
        }) => (
            name.clone(),
            *code,
            message.clone(),
            hint.clone().unwrap_or_default(),
        ),
        other => panic!("expected the program's error, got {other:?}: {e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_changes_wait_for_the_delay_and_every_command_checks_its_signer() {
    let w = deploy(Net::start(false), START, 600).await;
    let net = &w.net;
    let delay = GOVERNANCE_DELAY_SECS as i64;
    let admin_ctx = w.ctx(&w.admin, &[]);
    let guardian_ctx = w.ctx(&w.guardian, &[]);
    let stranger = net.funded().await;
    let stranger_ctx = w.ctx(&stranger, &[]);
    let stranger_lamports = net.lamports(&stranger.pubkey()).await;
    // Applies are open to anyone: another key pays for them.
    let anyone = net.funded().await;
    let anyone_ctx = w.ctx(&anyone, &[]);

    // queue-params: the stranger is refused before sending; the admin queues three values (one
    // of them a consensus parameter), which change nothing until applied.
    let args = QueueParamsArgs {
        price_max_age_secs: Some(1_200),
        net_emissions_cap: Some(150 * TOKEN),
        grace_secs: Some(60),
        ..QueueParamsArgs::default()
    };
    wrong_keypair(
        &admin::queue_params(&stranger_ctx, &args).await.unwrap_err(),
        "admin",
    );
    let o = admin::queue_params(&admin_ctx, &args)
        .await
        .expect("queue-params");
    assert_eq!(o.changes.len(), 3, "{:?}", o.changes);
    assert_eq!(
        o.changes[0], "economics.price_max_age_secs 600 -> 1200",
        "{:?}",
        o.changes
    );
    assert_eq!(
        o.changes[2], "consensus.grace_secs 5 -> 60",
        "{:?}",
        o.changes
    );
    assert_eq!(
        (o.change_id, o.executable_at),
        (Some(0), Some(START + delay))
    );
    let c = config_of(&w).await;
    assert_eq!(c.next_change_id, 1);
    assert_eq!(c.economics.price_max_age_secs, 600, "nothing applies yet");
    let queued: PendingChange = net
        .account(&w.d.pending_change(0))
        .await
        .expect("the pending change");
    assert_eq!(
        (queued.queued_by, queued.queued_at, queued.executable_at),
        (w.admin.pubkey(), START, START + delay)
    );

    // Values equal to the current ones: nothing to queue.
    let e = admin::queue_params(
        &admin_ctx,
        &QueueParamsArgs {
            price_max_age_secs: Some(600),
            challenge_period_secs: Some(CHALLENGE_SECS),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .unwrap_err();
    assert!(format!("{e}").starts_with("nothing to change"), "{e}");
    // Values out of the program's bounds: the program's error, named, with what to do.
    let e = admin::queue_params(
        &admin_ctx,
        &QueueParamsArgs {
            challenge_period_secs: Some(5),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .unwrap_err();
    let (name, code, _, hint) = program_error(&e);
    assert_eq!((name.as_str(), code), ("InvalidChallengePeriod", 6013));
    assert!(hint.contains("docs/parameters.md"), "{e}");
    let e = admin::queue_params(
        &admin_ctx,
        &QueueParamsArgs {
            grace_secs: Some(EPOCH_SECS / 2),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .unwrap_err();
    let (name, _, _, hint) = program_error(&e);
    assert_eq!(name, "InvalidConsensusParams");
    assert!(hint.contains("docs/parameters.md"), "{e}");
    let e = admin::queue_params(
        &admin_ctx,
        &QueueParamsArgs {
            initial_per_epoch: Some(3_000 * TOKEN),
            rate_capacity: Some(4_000 * TOKEN),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .unwrap_err();
    let (name, _, _, hint) = program_error(&e);
    assert_eq!(name, "RaiseTooLarge");
    assert!(hint.contains("raise in steps"), "{e}");
    // k = 0 would turn the paid-usage cap off: refused before sending, saying the bounds.
    let e = admin::queue_params(
        &admin_ctx,
        &QueueParamsArgs {
            usage_cap_bps: Some(0),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        format!("{e}").contains("k is 1 to 10000 basis points"),
        "{e}"
    );

    // apply before the delay: refused with the time to wait for, before sending; the program
    // refuses it too when sent anyway.
    let e = admin::apply(&stranger_ctx, 0).await.unwrap_err();
    match command_error(&e) {
        Some(CommandError::ChangeNotReady {
            id, executable_at, ..
        }) => assert_eq!((*id, *executable_at), (0, START + delay)),
        other => panic!("expected ChangeNotReady, got {other:?}: {e:#}"),
    }
    let text = format!("{e}");
    assert!(
        text.contains("change 0 is not executable yet")
            && text.contains("2027-01-15 11:00:00 UTC")
            && text.contains("in 3h")
            && text.contains("run `backhaul admin apply 0` again"),
        "{text}"
    );
    let out = w.run_cli(&["admin", "apply", "0"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not executable yet"),
        "{}",
        stderr(&out)
    );
    let e = tx::send(
        &stranger_ctx,
        "apply the change",
        &[ix::apply_change(&w.d, 0, &w.admin.pubkey())],
        &[],
    )
    .await
    .unwrap_err();
    let (name, _, _, hint) = program_error(&e);
    assert_eq!(name, "ChangeNotReady");
    assert!(hint.contains("wait until"), "{hint}");
    let e = admin::apply(&stranger_ctx, 7).await.unwrap_err();
    assert!(
        format!("{e}").contains("no change 7 was ever queued"),
        "{e}"
    );

    // After the delay anyone applies it: the budget parameters apply from the first epoch that
    // had not started.
    net.warp_to(START + delay).await;
    let admin_lamports = net.lamports(&w.admin.pubkey()).await;
    let o = admin::apply(&anyone_ctx, 0).await.expect("apply");
    assert_eq!(o.from_epoch, Some(2), "{:?}", o.changes);
    assert!(
        net.lamports(&w.admin.pubkey()).await > admin_lamports,
        "the rent goes back to the admin"
    );
    assert!(net
        .account::<PendingChange>(&w.d.pending_change(0))
        .await
        .is_none());
    let c = config_of(&w).await;
    assert_eq!(
        c.economics.price_max_age_secs, 600,
        "epoch 1 keeps its values"
    );
    assert_eq!(c.consensus.grace_secs, 5, "epoch 1 keeps its values");
    let pending = c.pending_params.expect("pending parameters");
    assert_eq!(pending.from_epoch, 2);
    assert_eq!(pending.params.economics.price_max_age_secs, 1_200);
    assert_eq!(pending.params.consensus.grace_secs, 60);
    assert_eq!(pending.params.economics.net_emissions_cap, 150 * TOKEN);
    let e = admin::apply(&stranger_ctx, 0).await.unwrap_err();
    assert!(format!("{e}").contains("no longer queued"), "{e}");

    // A second budget change cannot apply while the first waits for its epoch.
    let o = admin::queue_params(
        &admin_ctx,
        &QueueParamsArgs {
            floor_per_epoch: Some(20 * TOKEN),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .expect("queue again");
    assert_eq!(o.change_id, Some(1));
    net.warp_to(START + 2 * delay).await;
    let e = admin::apply(&stranger_ctx, 1).await.unwrap_err();
    let (name, _, _, hint) = program_error(&e);
    assert_eq!(name, "BudgetChangePending");
    assert!(
        hint.contains("from epoch 2") && hint.contains("once epoch 1 is finalized"),
        "{hint}"
    );

    // A guardian cancels it; the rent goes back to the admin who queued it.
    wrong_keypair(
        &admin::cancel(&stranger_ctx, 1, true).await.unwrap_err(),
        "guardian",
    );
    wrong_keypair(
        &admin::cancel(&guardian_ctx, 1, false).await.unwrap_err(),
        "admin",
    );
    let admin_lamports = net.lamports(&w.admin.pubkey()).await;
    let o = admin::cancel(&guardian_ctx, 1, true)
        .await
        .expect("guardian cancels");
    assert_eq!(o.change_id, Some(1));
    assert!(net.lamports(&w.admin.pubkey()).await > admin_lamports);
    assert!(net
        .account::<PendingChange>(&w.d.pending_change(1))
        .await
        .is_none());

    // queue-oracles: checked locally, then by signer.
    let new_oracles: Vec<Keypair> = (0..4).map(|_| Keypair::new()).collect();
    let keys: Vec<String> = new_oracles.iter().map(|k| k.pubkey().to_string()).collect();
    let e = admin::queue_oracles(
        &admin_ctx,
        &QueueOraclesArgs {
            oracles: keys.clone(),
            threshold: 2,
        },
    )
    .await
    .unwrap_err();
    assert!(format!("{e}").contains("more than half"), "{e}");
    let mut with_guardian = keys.clone();
    with_guardian[0] = w.guardian.pubkey().to_string();
    let e = admin::queue_oracles(
        &admin_ctx,
        &QueueOraclesArgs {
            oracles: with_guardian,
            threshold: 3,
        },
    )
    .await
    .unwrap_err();
    assert!(format!("{e}").contains("must be different keys"), "{e}");
    let set = QueueOraclesArgs {
        oracles: keys.clone(),
        threshold: 3,
    };
    wrong_keypair(
        &admin::queue_oracles(&stranger_ctx, &set).await.unwrap_err(),
        "admin",
    );
    let o = admin::queue_oracles(&admin_ctx, &set)
        .await
        .expect("queue-oracles");
    assert_eq!(o.change_id, Some(2));

    // queue-guardians, through a context that prices its transactions: every transaction
    // starts with the compute-unit limit and, when asked, the price.
    let new_guardian = net.funded().await;
    let guardians = QueueGuardiansArgs {
        guardians: vec![new_guardian.pubkey().to_string()],
    };
    wrong_keypair(
        &admin::queue_guardians(&stranger_ctx, &guardians)
            .await
            .unwrap_err(),
        "admin",
    );
    let priced = backhaul_cli::Context::with_signer(
        &backhaul_cli::context::GlobalArgs {
            compute_unit_limit: Some(150_000),
            compute_unit_price: Some(5_000),
            ..net.args(Some(&w.mint), &[])
        },
        w.admin.insecure_clone(),
    )
    .expect("context");
    let o = admin::queue_guardians(&priced, &guardians)
        .await
        .expect("queue-guardians");
    assert_eq!(o.change_id, Some(3));
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
    let account_keys: Vec<&str> = message["accountKeys"]
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
            let program = account_keys[ix["programIdIndex"].as_u64().expect("index") as usize];
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

    // The guardian cannot cancel the change that removes it: refused before sending, and by the
    // program.
    let e = admin::cancel(&guardian_ctx, 3, true).await.unwrap_err();
    assert!(
        format!("{e}").contains("a guardian cannot cancel change 3"),
        "{e}"
    );
    let e = tx::send(
        &guardian_ctx,
        "cancel the change",
        &[ix::cancel_change(
            &w.d,
            &w.guardian.pubkey(),
            3,
            &w.admin.pubkey(),
        )],
        &[],
    )
    .await
    .unwrap_err();
    let (name, _, _, hint) = program_error(&e);
    assert_eq!(name, "CannotCancel");
    assert!(hint.contains("ask the admin"), "{hint}");

    // changes: the two queued changes, through the library and the binary.
    let v = admin::changes(&stranger_ctx).await.expect("changes");
    assert_eq!(v.next_change_id, 4);
    let listed: Vec<(u64, &str, bool)> = v
        .changes
        .iter()
        .map(|c| (c.id, c.kind.as_str(), c.executable))
        .collect();
    assert_eq!(listed, [(2, "oracles", false), (3, "guardians", false)]);
    assert!(
        v.changes[1].summary[0].starts_with("guardians ["),
        "{:?}",
        v.changes[1]
    );
    let out = w.run_cli(&["admin", "changes", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["changes"][0]["id"], 2);
    assert_eq!(j["changes"][0]["executable_at"], START + 2 * delay + delay);
    let out = w.run_cli(&["admin", "changes"]).await;
    let text = stdout(&out);
    assert!(
        text.contains("change 2 (oracles)") && text.contains("executable at "),
        "{text}"
    );

    // pause / unpause: a guardian may pause but not unpause; a pause cannot follow another
    // within the cooldown.
    wrong_keypair(
        &admin::set_paused(&stranger_ctx, true).await.unwrap_err(),
        "admin or guardian",
    );
    let e = tx::send(
        &stranger_ctx,
        "pause",
        &[ix::set_paused(&w.d, &stranger.pubkey(), true)],
        &[],
    )
    .await
    .unwrap_err();
    let (name, _, message, hint) = program_error(&e);
    assert_eq!(name, "NotAdminOrGuardian");
    assert_eq!(message, "The signer is neither the admin nor a guardian");
    assert!(hint.contains("admin show"), "{hint}");
    let now = net.now().await;
    admin::set_paused(&guardian_ctx, true)
        .await
        .expect("guardian pauses");
    let c = config_of(&w).await;
    assert!(c.is_paused(now));
    assert_eq!(c.paused_until, now + 86_400);
    let e = admin::set_paused(&admin_ctx, true).await.unwrap_err();
    assert!(format!("{e}").contains("already paused until"), "{e}");
    wrong_keypair(
        &admin::set_paused(&guardian_ctx, false).await.unwrap_err(),
        "admin",
    );
    admin::set_paused(&admin_ctx, false)
        .await
        .expect("admin unpauses");
    let c = config_of(&w).await;
    assert!(!c.is_paused(now));
    assert_eq!(c.pause_available_at, now + 86_400);
    let e = admin::set_paused(&guardian_ctx, true).await.unwrap_err();
    assert!(format!("{e}").contains("nobody can pause before"), "{e}");
    let e = admin::set_paused(&admin_ctx, false).await.unwrap_err();
    assert!(format!("{e}").contains("already running"), "{e}");

    let lamports_after_failed_tx = net.lamports(&stranger.pubkey()).await;
    assert_eq!(
        lamports_after_failed_tx, stranger_lamports,
        "every refusal above happened before sending (preflight failures cost nothing)"
    );

    // After the delay the oracle set and the guardians change.
    net.warp_to(START + 3 * delay).await;
    admin::apply(&anyone_ctx, 2).await.expect("apply oracles");
    let o = admin::apply(&anyone_ctx, 3).await.expect("apply guardians");
    assert_eq!(o.from_epoch, None);
    let c = config_of(&w).await;
    assert_eq!(
        c.oracles,
        new_oracles.iter().map(|k| k.pubkey()).collect::<Vec<_>>()
    );
    assert_eq!(c.threshold, 3);
    assert_eq!(c.guardians, vec![new_guardian.pubkey()]);
    // The old guardian is no longer one.
    wrong_keypair(
        &guardian::veto(&guardian_ctx, 0).await.unwrap_err(),
        "guardian",
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
        &admin::queue_params(&admin_ctx, &args).await.unwrap_err(),
        "admin",
    );

    // show, through the library and the binary's JSON.
    let v = admin::show(&stranger_ctx).await.expect("show");
    assert_eq!(v.admin, next.pubkey().to_string());
    assert_eq!(v.guardians, vec![new_guardian.pubkey().to_string()]);
    assert_eq!(v.threshold, 3);
    assert_eq!(v.governance_delay_secs, GOVERNANCE_DELAY_SECS);
    assert_eq!(v.next_change_id, 4);
    assert_eq!(v.pending_params.as_ref().map(|p| p.from_epoch), Some(2));
    assert!(!v.paused);
    assert_eq!(v.pause_available_at, now + 86_400);
    assert_eq!(v.current_epoch, 4);
    assert_eq!(v.totals.supply, 1_000_000 * TOKEN);
    assert_eq!(v.price.credits_per_token, 0);
    let out = w.run_cli(&["admin", "show", "-o", "json-compact"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "compact JSON is one line");
    let j = json(&out);
    assert_eq!(j["admin"], next.pubkey().to_string());
    assert_eq!(j["oracles"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        j["pending_params"]["economics"]["price_max_age_secs"],
        1_200
    );
    assert_eq!(j["economics"]["price_max_age_secs"], 600);
    assert_eq!(j["consensus"]["credits_per_gib"], 50_000);
    assert_eq!(j["consensus"]["grace_secs"], 5);
    assert_eq!(j["pending_params"]["consensus"]["grace_secs"], 60);
    // The same for people.
    let out = w.run_cli(&["admin", "show"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        format!("Deployment {}", w.d.config),
        format!("  admin             {}", next.pubkey()),
        format!("  guardians         1: {}", new_guardian.pubkey()),
        "  paused            no (cooling down: nobody can pause before".to_string(),
        format!("  governance        changes wait {GOVERNANCE_DELAY_SECS} s (3h)"),
        "  from epoch 2      1000 per epoch".to_string(),
        "  consensus         50000 credits per GiB, pair cap 107374182400 bytes, max rate \
         1073741824 bytes/s, grace 5 s"
            .to_string(),
        "                    50000 credits per GiB, pair cap 107374182400 bytes, max rate \
         1073741824 bytes/s, grace 60 s"
            .to_string(),
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

    // queue-params --from-file: compared with the newest (pending) values, only the file's
    // economics and grace period differ.
    let o = admin::queue_params(
        &next_ctx,
        &QueueParamsArgs {
            from_file: Some(w.params_path.clone()),
            ..QueueParamsArgs::default()
        },
    )
    .await
    .expect("queue-params from the file");
    assert_eq!(
        o.changes,
        [
            "economics.price_max_age_secs 1200 -> 600",
            "economics.net_emissions_cap 150000000 -> 100000000",
            "consensus.grace_secs 60 -> 5"
        ],
        "{:?}",
        o.changes
    );
    assert_eq!(o.change_id, Some(4));
    // The new admin cancels it.
    let out = w
        .run_cli(&[
            "admin",
            "cancel",
            "4",
            "--keypair",
            &path_str(&net.keypair_file("next", &next)),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("cancel: done"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardians_veto_a_bounded_number_of_times_cancel_and_pause() {
    let w = deploy(Net::start(false), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let guardian_ctx = w.ctx(&w.guardian, &[]);
    let guardian_file = net.keypair_file("guardian", &w.guardian);
    let guardian_file = path_str(&guardian_file);
    let stranger = net.funded().await;

    // Before any vote.
    let v = guardian::show(&guardian_ctx).await.expect("show");
    assert_eq!(v.guardians, vec![w.guardian.pubkey().to_string()]);
    assert_eq!(
        (
            v.epoch.epoch,
            v.epoch.status.as_str(),
            v.epoch.vetoes_used,
            v.epoch.vetoes_max
        ),
        (0, "none", 0, 3)
    );
    assert!(v.can_pause && !v.paused);
    let e = guardian::veto(&guardian_ctx, 0).await.unwrap_err();
    assert!(format!("{e}").contains("has no votes yet"), "{e}");
    wrong_keypair(
        &guardian::veto(&w.ctx(&stranger, &[]), 0).await.unwrap_err(),
        "guardian",
    );

    // Epoch 0 ends; one oracle votes: a guardian vetoes the vote in progress (the binary).
    net.warp_to(START + EPOCH_SECS as i64 + 10).await;
    w.seal(0).await;
    let a = w.empty_proposal(1);
    w.vote(0, 0, a).await;
    let out = w
        .run_cli(&["guardian", "veto", "0", "--keypair", &guardian_file])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("epoch 0 vetoed while voting (veto 1 of 3)"),
        "{}",
        stdout(&out)
    );
    let record = || async {
        net.account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .expect("record")
    };
    let r = record().await;
    assert_eq!((r.status, r.vetoes), (EpochStatus::Vetoed, 1));
    let e = guardian::veto(&guardian_ctx, 0).await.unwrap_err();
    assert!(format!("{e}").contains("already vetoed"), "{e}");

    // Quorum on a proposal, vetoed in its challenge period; then another, and a third.
    for (tag, n) in [(1, 2), (2, 3)] {
        let p = w.empty_proposal(tag);
        w.vote(0, 0, p).await;
        w.vote(1, 0, p).await;
        assert_eq!(record().await.status, EpochStatus::Proposed);
        let o = guardian::veto(&guardian_ctx, 0).await.expect("veto");
        assert!(
            o.changes[0].contains(&format!("vetoed while proposed (veto {n} of 3)")),
            "{:?}",
            o.changes
        );
        assert!(o.changes[1].contains("cannot be voted in that round"));
    }
    // The fourth is refused, before sending and by the program.
    let c = w.empty_proposal(3);
    w.vote(0, 0, c).await;
    w.vote(1, 0, c).await;
    let r = record().await;
    assert_eq!((r.status, r.vetoes), (EpochStatus::Proposed, 3));
    let e = guardian::veto(&guardian_ctx, 0).await.unwrap_err();
    assert!(
        format!("{e}").contains("already vetoed 3 times, the most allowed"),
        "{e}"
    );
    let e = tx::send(
        &guardian_ctx,
        "veto",
        &[ix::veto(&w.d, &w.guardian.pubkey(), 0)],
        &[],
    )
    .await
    .unwrap_err();
    let (name, _, _, hint) = program_error(&e);
    assert_eq!(name, "VetoLimitReached");
    assert!(hint.contains("guardian pause"), "{hint}");
    let v = guardian::show(&guardian_ctx).await.expect("show");
    assert_eq!(
        (
            v.epoch.status.as_str(),
            v.epoch.vetoes_used,
            v.epoch.veto_window_ends_at
        ),
        ("proposed", 3, Some(r.finalizable_at))
    );
    let out = w.run_cli(&["guardian", "show"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("proposed (round 3), vetoes used 3 of 3; vetoable until"),
        "{}",
        stdout(&out)
    );
    // After the challenge period it cannot be vetoed at all.
    net.warp_to(r.finalizable_at).await;
    let e = guardian::veto(&guardian_ctx, 0).await.unwrap_err();
    assert!(
        format!("{e}").contains("challenge period of epoch 0 ended"),
        "{e}"
    );

    // A guardian cancels a queued change that keeps it (the binary); the admin gets the rent.
    let g2 = Keypair::new();
    admin::queue_guardians(
        &w.ctx(&w.admin, &[]),
        &QueueGuardiansArgs {
            guardians: vec![w.guardian.pubkey().to_string(), g2.pubkey().to_string()],
        },
    )
    .await
    .expect("queue-guardians");
    let v = guardian::show(&guardian_ctx).await.expect("show");
    assert_eq!(v.changes.len(), 1);
    assert_eq!(v.changes[0].kind, "guardians");
    let admin_lamports = net.lamports(&w.admin.pubkey()).await;
    let out = w
        .run_cli(&["guardian", "cancel", "0", "--keypair", &guardian_file])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(net.lamports(&w.admin.pubkey()).await > admin_lamports);
    assert!(admin::changes(&guardian_ctx)
        .await
        .expect("changes")
        .changes
        .is_empty());

    // A guardian pauses for at most a day.
    let now = net.now().await;
    let out = w
        .run_cli(&["guardian", "pause", "--keypair", &guardian_file])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = guardian::show(&guardian_ctx).await.expect("show");
    assert!(v.paused && !v.can_pause);
    assert_eq!(v.paused_until, now + 86_400);
    assert_eq!(v.pause_available_at, now + 2 * 86_400);
    let out = w.run_cli(&["guardian", "show"]).await;
    assert!(
        stdout(&out).contains("  paused            YES, until"),
        "{}",
        stdout(&out)
    );
    // The pause expires on its own.
    net.warp_to(now + 86_400).await;
    let v = guardian::show(&guardian_ctx).await.expect("show");
    assert!(!v.paused && !v.can_pause);
    let e = admin::set_paused(&guardian_ctx, true).await.unwrap_err();
    assert!(format!("{e}").contains("nobody can pause before"), "{e}");
}

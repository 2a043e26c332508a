//! `backhaul firm buy` and `balance` against posted prices: slippage bounds met and not met, a
//! stale price refused before sending, a paused deployment, an unfunded buyer.

use crate::common::*;
use backhaul_cli::admin;
use backhaul_cli::error::{command_error, CommandError};
use backhaul_cli::firm::{self, BuyArgs};
use backhaul_sdk::state::CreditAccount;
use solana_sdk::signature::Signer;

/// A buy of `tokens` with no other bound.
fn buy_args(tokens: &str) -> BuyArgs {
    BuyArgs {
        tokens: tokens.into(),
        ..BuyArgs::default()
    }
}

/// A buy that must be refused; the error it was refused with.
async fn buy_refused(ctx: &backhaul_cli::Context, args: &BuyArgs) -> anyhow::Error {
    match firm::buy(ctx, args).await {
        Ok(o) => panic!("the buy of {} tokens went through: {o:?}", args.tokens),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buying_credits_respects_slippage_and_price_age() {
    let w = deploy(Net::start(false), START, 600).await;
    let net = &w.net;
    let buyer = net.funded().await;
    w.give_tokens(&buyer.pubkey(), 500 * TOKEN).await;
    let ctx = w.ctx(&buyer, &[]);
    let ata = w.d.ata(&buyer.pubkey());

    // The deployment named by its config account reads the same; an account that is not a
    // config, or none at all, is refused with what to check.
    let by_config = |config: String| {
        backhaul_cli::Context::new(&backhaul_cli::context::GlobalArgs {
            config: Some(config),
            ..net.args(None, &[])
        })
        .expect("context")
    };
    let shown = backhaul_cli::admin::show(&by_config(w.d.config.to_string()))
        .await
        .expect("show by config");
    assert_eq!(shown.mint, w.mint.to_string());
    let e = backhaul_cli::admin::show(&by_config(w.mint.to_string()))
        .await
        .unwrap_err();
    assert!(
        format!("{e}").contains("does not decode as expected"),
        "{e}"
    );
    let missing = solana_sdk::pubkey::Pubkey::new_unique();
    let e = backhaul_cli::admin::show(&by_config(missing.to_string()))
        .await
        .unwrap_err();
    assert!(
        format!("{e}").contains(&format!("no config account at {missing}")),
        "{e}"
    );
    let e = backhaul_cli::Context::new(&backhaul_cli::context::GlobalArgs {
        mint: Some("not-a-key".into()),
        ..net.args(None, &[])
    })
    .err()
    .expect("a bad --mint");
    assert!(format!("{e}").contains("is not a base58 public key"), "{e}");

    // A mint with no deployment behind it.
    let stray = solana_sdk::pubkey::Pubkey::new_unique();
    let e = buy_refused(&net.ctx(&buyer, Some(&stray), &[]), &buy_args("1")).await;
    assert!(
        format!("{e}").contains(&format!("no Backhaul deployment for mint {stray}")),
        "{e}"
    );

    // No price yet.
    let e = buy_refused(&ctx, &buy_args("1")).await;
    assert!(
        format!("{e}").starts_with("no price has been posted yet"),
        "{e}"
    );

    // Two of three oracles post 100,000 credits per token.
    w.post_price(2, 100_000).await;

    // 10 tokens at the quote, 1% slippage allowed: exactly 1,000,000 credits.
    let o = firm::buy(
        &ctx,
        &BuyArgs {
            tokens: "10".into(),
            max_slippage_bps: Some(100),
            ..BuyArgs::default()
        },
    )
    .await
    .expect("buy");
    assert_eq!(o.tokens, 10 * TOKEN);
    assert_eq!(
        (o.quoted_credits, o.credits, o.balance),
        (1_000_000, 1_000_000, 1_000_000)
    );
    assert_eq!(o.min_credits, 990_000);
    assert_eq!(net.token_balance(&ata).await, 490 * TOKEN);

    // Against a price the buyer expected: 5% below 105,000 is met by 100,000 ...
    let o = firm::buy(
        &ctx,
        &BuyArgs {
            tokens: "2.5".into(),
            expected_price: Some(105_000),
            max_slippage_bps: Some(500),
            ..BuyArgs::default()
        },
    )
    .await
    .expect("buy within the bound");
    assert_eq!(o.credits, 250_000);
    assert_eq!(o.min_credits, 249_375);
    // ... 3% below 110,000 is not: refused before sending.
    let e = buy_refused(
        &ctx,
        &BuyArgs {
            tokens: "10".into(),
            expected_price: Some(110_000),
            max_slippage_bps: Some(300),
            ..BuyArgs::default()
        },
    )
    .await;
    match command_error(&e) {
        Some(CommandError::Slippage {
            credits,
            min_credits,
            price,
            ..
        }) => assert_eq!(
            (*credits, *min_credits, *price),
            (1_000_000, 1_067_000, 100_000)
        ),
        other => panic!("expected a slippage refusal, got {other:?}: {e:#}"),
    }
    // So is an explicit minimum above the quote.
    let e = buy_refused(
        &ctx,
        &BuyArgs {
            tokens: "1".into(),
            min_credits: Some(100_001),
            ..BuyArgs::default()
        },
    )
    .await;
    assert!(matches!(
        command_error(&e),
        Some(CommandError::Slippage { .. })
    ));
    assert_eq!(
        net.token_balance(&ata).await,
        487_500_000,
        "nothing was burned"
    );

    // Credits for someone else.
    let beneficiary = solana_sdk::pubkey::Pubkey::new_unique();
    let o = firm::buy(
        &ctx,
        &BuyArgs {
            tokens: "0.5".into(),
            beneficiary: Some(beneficiary.to_string()),
            ..BuyArgs::default()
        },
    )
    .await
    .expect("buy for a beneficiary");
    assert_eq!(
        (o.credits, o.beneficiary.clone()),
        (50_000, beneficiary.to_string())
    );
    let credited: CreditAccount = net
        .account(&w.d.credits(&beneficiary))
        .await
        .expect("credits");
    assert_eq!(credited.balance, 50_000);

    // Malformed amounts and more than the buyer holds are refused before sending.
    for (tokens, says) in [
        ("1.0000001", "has 7 digits after the point"),
        ("ten", "is not an amount of tokens"),
        ("0", "more than zero"),
        ("1000", "fewer than the 1000 to burn"),
    ] {
        let e = buy_refused(&ctx, &buy_args(tokens)).await;
        assert!(format!("{e}").contains(says), "{tokens}: {e}");
    }

    // balance (no oracles: the credits only, and why usage is unknown).
    let b = firm::balance(&ctx, None).await.expect("balance");
    assert!(b.exists);
    assert_eq!(
        (b.balance, b.issued, b.settled, b.unpaid),
        (1_250_000, 1_250_000, 0, 0)
    );
    assert_eq!(b.tokens_burned, 12_500_000);
    assert!(b.unsettled.is_none());
    assert!(b.usage_error.as_deref().unwrap_or("").contains("--oracle"));
    let nobody = firm::balance(&ctx, Some(solana_sdk::pubkey::Pubkey::new_unique()))
        .await
        .expect("balance of nobody");
    assert!(!nobody.exists);
    assert_eq!(nobody.balance, 0);

    // Paused: refused before sending.
    admin::set_paused(&w.ctx(&w.guardian, &[]), true)
        .await
        .expect("pause");
    let e = buy_refused(&ctx, &buy_args("1")).await;
    assert!(
        matches!(command_error(&e), Some(CommandError::Paused { .. })),
        "{e:#}"
    );
    admin::set_paused(&w.ctx(&w.admin, &[]), false)
        .await
        .expect("unpause");

    // The price ages past price_max_age_secs (600 s) by the chain's clock: refused, saying so.
    net.warp_to(START + 601).await;
    let lamports = net.lamports(&buyer.pubkey()).await;
    let e = buy_refused(&ctx, &buy_args("1")).await;
    match command_error(&e) {
        Some(CommandError::StalePrice {
            age_secs,
            max_age_secs,
        }) => assert_eq!((*age_secs, *max_age_secs), (601, 600)),
        other => panic!("expected a stale-price refusal, got {other:?}: {e:#}"),
    }
    let text = format!("{e}");
    assert!(
        text.contains("stale")
            && text.contains("price_max_age_secs")
            && text.contains("nothing was sent"),
        "{text}"
    );
    assert_eq!(net.lamports(&buyer.pubkey()).await, lamports);
    assert_eq!(net.token_balance(&ata).await, 487 * TOKEN);

    // The binary says the same and exits 1; with JSON output the error is JSON on stdout.
    let keypair = path_str(&net.keypair_file("buyer", &buyer));
    let args = |json: bool| {
        let mut a = vec![
            "firm",
            "buy",
            "--tokens",
            "1",
            "--keypair",
            keypair.as_str(),
        ];
        if json {
            a.extend(["--output", "json"]);
        }
        a
    };
    let out = w.run_cli(&args(false)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the posted price is stale"),
        "{}",
        stderr(&out)
    );
    let out = w.run_cli(&args(true)).await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(v["error"].as_str().unwrap_or("").contains("stale"), "{v}");

    // A fresh price opens purchases again; the binary's JSON reports the purchase.
    w.post_price(2, 100_000).await;
    let out = w.run_cli(&args(true)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["credits"], 100_000);
    assert_eq!(v["balance"], 1_350_000);
    assert_eq!(v["tokens_display"], "1");
}

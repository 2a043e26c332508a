//! The deployment a run sets up, through real transactions on the local endpoint (started in
//! this process): the mint handed to the config, one oracle, the posted price, buyers' credits,
//! the clock warp and the seal that let the oracle close the epoch.

use backhaul::state::{Config, CreditAccount, EpochLedger, PriceFeed};
use backhaul_load::chain::{self, Chain, CREDITS_PER_TOKEN, EPOCH_SECS, TOKEN};
use backhaul_localnet::{Localnet, LocalnetConfig};
use solana_commitment_config::CommitmentConfig;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

async fn account<T: anchor_lang::AccountDeserialize>(chain: &Chain, key: &Pubkey) -> Option<T> {
    let acc = chain
        .rpc
        .get_account_with_commitment(key, CommitmentConfig::confirmed())
        .await
        .ok()?
        .value?;
    T::try_deserialize(&mut &acc.data[..]).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_deploys_prices_funds_buyers_warps_and_seals() {
    let genesis = 1_800_000_000;
    let net = Localnet::start(LocalnetConfig {
        unix_timestamp: Some(genesis + 60),
        ..Default::default()
    })
    .unwrap();
    let chain = Chain::new(net.url(), net.faucet().insecure_clone()).unwrap();
    let (mint, oracle) = (Keypair::new(), Keypair::new());
    let buyers: Vec<Keypair> = (0..2).map(|_| Keypair::new()).collect();
    let deployed = chain::deploy(&chain, &mint, &oracle, &buyers, genesis, 7)
        .await
        .unwrap();
    assert_eq!(deployed.credits_per_buyer, 7 * CREDITS_PER_TOKEN);

    let config: Config = account(&chain, &deployed.d.config).await.unwrap();
    assert_eq!(config.oracles, vec![oracle.pubkey()]);
    assert_eq!((config.threshold, config.genesis_ts), (1, genesis));
    assert_eq!(config.epoch_length_secs, EPOCH_SECS);
    let feed: PriceFeed = account(&chain, &deployed.d.price_feed()).await.unwrap();
    assert_eq!(feed.credits_per_token, CREDITS_PER_TOKEN);
    for b in &buyers {
        let c: CreditAccount = account(&chain, &deployed.d.credits(&b.pubkey()))
            .await
            .unwrap();
        assert_eq!(c.balance, 7 * CREDITS_PER_TOKEN);
    }

    // The epoch cannot be sealed before it ends; after the warp it can.
    let seal = backhaul_sdk::ix::seal_epoch(&deployed.d, &chain.faucet.pubkey(), 0);
    assert!(chain
        .send(
            "early seal",
            std::slice::from_ref(&seal),
            &chain.faucet,
            &[]
        )
        .await
        .is_err());
    chain
        .warp_to(genesis + EPOCH_SECS as i64 + 6)
        .await
        .unwrap();
    // The clock moves forward only.
    assert!(chain.warp_to(genesis).await.is_err());
    chain
        .send("seal", &[seal], &chain.faucet, &[])
        .await
        .unwrap();
    let ledger: EpochLedger = account(&chain, &deployed.d.ledger(0)).await.unwrap();
    assert!(ledger.sealed);
    assert_eq!(ledger.tokens_burned, 2 * 7 * TOKEN);

    // A second deployment of the same mint is refused.
    assert!(chain::deploy(&chain, &mint, &oracle, &buyers, genesis, 7)
        .await
        .is_err());
    net.shutdown();
}

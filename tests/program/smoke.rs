use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;

#[tokio::test]
async fn one_epoch_end_to_end() {
    let mut env = Env::new().await;
    let a = Pubkey::new_unique();
    let b = Pubkey::new_unique();
    let tree = env.reward_tree(0, &[(a, 300), (b, 700)]);
    let p = env.proposal(&tree, 0);
    env.run_epoch(0, p).await;
    assert_eq!(env.token_balance(&env.vault.clone()).await, 1_000);
    env.claim_from(&tree, 0, &a).await.unwrap();
    assert_eq!(env.token_balance(&ata(&a, &env.mint.clone())).await, 300);
}

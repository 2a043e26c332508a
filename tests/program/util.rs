//! Small helpers shared by the test modules.

use backhaul_tests::Env;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

pub fn unpack_token(data: &[u8]) -> spl_token_interface::state::Account {
    spl_token_interface::state::Account::unpack(data).expect("token account")
}

/// Sends 10 SOL to `to` from the payer.
pub async fn fund(env: &mut Env, to: &Pubkey) {
    let payer = env.payer().pubkey();
    let ix = solana_system_interface::instruction::transfer(&payer, to, 10_000_000_000);
    env.send(&[ix], &[]).await.expect("fund");
}

/// A funded key holding `tokens` of the deployment's mint.
pub async fn buyer_with(env: &mut Env, tokens: u64) -> Keypair {
    let buyer = Keypair::new();
    fund(env, &buyer.pubkey()).await;
    env.give_tokens(&buyer.pubkey(), tokens).await;
    buyer
}

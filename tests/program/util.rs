//! Small helpers shared by the test modules.

use backhaul_tests::Env;
use solana_program_test::BanksClientError;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

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

/// Sends `ixs` like [`Env::send`] and returns the events the Backhaul program emitted (the data
/// of its self-CPIs, event tag removed), read from a simulation of the same instructions against
/// the same state just before.
pub async fn send_with_events(
    env: &mut Env,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<Vec<Vec<u8>>, BanksClientError> {
    let payer = env.payer();
    let mut keys: Vec<&Keypair> = vec![&payer];
    keys.extend_from_slice(signers);
    let tx = Transaction::new_signed_with_payer(
        ixs,
        Some(&payer.pubkey()),
        &keys,
        env.ctx.last_blockhash,
    );
    let account_keys = tx.message.account_keys.clone();
    let sim = env.ctx.banks_client.simulate_transaction(tx).await?;
    env.send(ixs, signers).await?;
    let inner = sim
        .simulation_details
        .and_then(|d| d.inner_instructions)
        .unwrap_or_default();
    let tag = anchor_lang::event::EVENT_IX_TAG_LE;
    Ok(inner
        .iter()
        .flatten()
        .filter(|i| account_keys[usize::from(i.instruction.program_id_index)] == backhaul::ID)
        .filter_map(|i| i.instruction.data.strip_prefix(tag).map(<[u8]>::to_vec))
        .collect())
}

/// The events of type `T` among `events` (see [`send_with_events`]).
pub fn events_of<T: anchor_lang::Event + anchor_lang::AnchorDeserialize>(
    events: &[Vec<u8>],
) -> Vec<T> {
    events
        .iter()
        .filter_map(|e| e.strip_prefix(T::DISCRIMINATOR))
        .map(|mut data| T::deserialize(&mut data).expect("event decodes"))
        .collect()
}
